//! Reads the `version` of a flow config and converts versions 1 to 3 to version 4.
//!
//! The original CLI rejects anything but version 4 since 4.0; flowhost converts older files
//! (the format the documented runner generation used) and warns what it changed:
//! `web: {...}`/`server: {...}` become `config.platform` (their fields go to
//! `config.settings`), flow-level `packages`/`bundle` move to `config.bundle`, `definitions`
//! merge into `variables` and `$def.x` becomes `$var.x`, a step's `code: "name"` becomes
//! `import: "name"`, version-2 contracts become the named contract `default` and version-3
//! `extends` becomes `extend`.

use serde_json::{Map, Value, json};

use super::error::{ConfigErrorKind, Diagnostics, child};

/// The flow config version this module produces.
pub const CURRENT_VERSION: u64 = 4;

const STEP_SECTIONS: [&str; 4] = ["sources", "destinations", "transformers", "stores"];

/// Returns the config as version 4 and the version it was written in, or `None` when the
/// version is missing or unsupported (reported in `diag`).
pub(crate) fn to_current(mut root: Value, diag: &mut Diagnostics) -> Option<(Value, u64)> {
    let Value::Object(map) = &mut root else {
        diag.error(
            "",
            ConfigErrorKind::WrongType {
                expected: "a JSON object at the top level",
                found: super::error::type_name(&root),
            },
        );
        return None;
    };
    let version = match map.get("version") {
        None => {
            diag.error("version", ConfigErrorKind::MissingVersion);
            return None;
        }
        Some(Value::Number(n))
            if n.as_u64()
                .is_some_and(|v| (1..=CURRENT_VERSION).contains(&v)) =>
        {
            n.as_u64().unwrap_or(CURRENT_VERSION)
        }
        Some(other) => {
            diag.error(
                "version",
                ConfigErrorKind::UnsupportedVersion {
                    found: other.to_string(),
                },
            );
            return None;
        }
    };
    if version == CURRENT_VERSION {
        return Some((root, version));
    }

    // A file that cannot be converted is not loaded further: what follows would only report
    // consequences of the failed conversion.
    let mut changes = Vec::new();
    let errors_before = diag.error_count();
    convert(map, version, &mut changes, diag);
    if diag.error_count() > errors_before {
        return None;
    }
    map.insert("version".to_string(), json!(CURRENT_VERSION));
    let summary = if changes.is_empty() {
        "no fields needed changes".to_string()
    } else {
        changes.join("; ")
    };
    diag.warn(
        "",
        format!("converted flow config version {version} to version 4: {summary}"),
    );
    Some((root, version))
}

fn convert(
    root: &mut Map<String, Value>,
    version: u64,
    changes: &mut Vec<String>,
    diag: &mut Diagnostics,
) {
    merge_definitions(root, "", changes, diag);

    match root.remove("contract") {
        Some(Value::Object(contract)) if version <= 2 => {
            root.insert("contract".into(), convert_v2_contract(contract));
            changes.push("contract → contract.default".to_string());
        }
        Some(Value::Object(mut contracts)) => {
            for (name, entry) in contracts.iter_mut() {
                if let Some(entry) = entry.as_object_mut()
                    && let Some(parent) = entry.remove("extends")
                {
                    entry.insert("extend".into(), parent);
                    changes.push(format!("contract.{name}.extends → extend"));
                }
            }
            root.insert("contract".into(), Value::Object(contracts));
        }
        Some(other) => {
            root.insert("contract".into(), other);
        }
        None => {}
    }

    if let Some(Value::Object(flows)) = root.get_mut("flows") {
        for (name, flow) in flows.iter_mut() {
            if let Value::Object(flow) = flow {
                convert_flow(name, flow, version, changes, diag);
            }
        }
    }

    let renamed: usize = root.values_mut().map(rename_def_refs).sum();
    if renamed > 0 {
        changes.push(format!("{renamed} $def references → $var"));
    }
}

fn convert_flow(
    name: &str,
    flow: &mut Map<String, Value>,
    version: u64,
    changes: &mut Vec<String>,
    diag: &mut Diagnostics,
) {
    let path = child("flows", name);

    let web = flow.remove("web");
    let server = flow.remove("server");
    let (platform, platform_settings) = match (web, server) {
        (Some(settings), None) => ("web", settings),
        (None, Some(settings)) => ("server", settings),
        (web, _) => {
            let which = if web.is_some() { "both" } else { "neither" };
            diag.error(
                &path,
                ConfigErrorKind::Upgrade {
                    reason: format!(
                        "a version {version} flow needs exactly one of \"web\" or \"server\", \
                         this one has {which}; keep the one the flow runs on"
                    ),
                },
            );
            return;
        }
    };
    let mut config = match flow.remove("config") {
        Some(Value::Object(config)) => config,
        _ => Map::new(),
    };
    config.insert("platform".into(), json!(platform));
    changes.push(format!(
        "{path}.{platform} → {path}.config.platform \"{platform}\""
    ));
    if let Value::Object(settings) = platform_settings
        && !settings.is_empty()
    {
        let target = config
            .entry("settings")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(target) = target {
            for (key, value) in settings {
                target.entry(key).or_insert(value);
            }
            changes.push(format!("{path}.{platform} fields → {path}.config.settings"));
        }
    }

    let mut bundle = match flow.remove("bundle") {
        Some(Value::Object(bundle)) => {
            changes.push(format!("{path}.bundle → {path}.config.bundle"));
            bundle
        }
        _ => Map::new(),
    };
    if let Some(packages) = flow.remove("packages") {
        bundle.entry("packages").or_insert(packages);
        changes.push(format!("{path}.packages → {path}.config.bundle.packages"));
    }
    if !bundle.is_empty() {
        config.insert("bundle".into(), Value::Object(bundle));
    }
    flow.insert("config".into(), Value::Object(config));

    if flow.remove("contract").is_some() {
        changes.push(format!(
            "{path}.contract dropped (version 4 has no flow-level contracts)"
        ));
    }
    merge_definitions(flow, &path, changes, diag);

    for section in STEP_SECTIONS {
        let Some(Value::Object(steps)) = flow.get_mut(section) else {
            continue;
        };
        for (id, step) in steps.iter_mut() {
            let Value::Object(step) = step else { continue };
            let step_path = child(&child(&path, section), id);
            merge_definitions(step, &step_path, changes, diag);
            if let Some(Value::String(export)) = step.get("code").cloned() {
                step.remove("code");
                step.insert("import".into(), Value::String(export));
                changes.push(format!("{step_path}.code \"<name>\" → import"));
            }
        }
    }
}

/// Moves `definitions` into `variables` at one level.
fn merge_definitions(
    level: &mut Map<String, Value>,
    path: &str,
    changes: &mut Vec<String>,
    diag: &mut Diagnostics,
) {
    let Some(Value::Object(definitions)) = level.remove("definitions") else {
        return;
    };
    let variables = level
        .entry("variables")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(variables) = variables else {
        return;
    };
    for (name, value) in definitions {
        if variables.contains_key(&name) {
            diag.error(
                &child(&child(path, "definitions"), &name),
                ConfigErrorKind::Upgrade {
                    reason: format!(
                        "definition \"{name}\" has the same name as a variable; version 4 \
                         merges definitions into variables, rename one of them"
                    ),
                },
            );
            continue;
        }
        variables.insert(name, value);
    }
    changes.push(format!("{} → variables", child(path, "definitions")));
}

/// Version-2 contract (`entity → action → schema`, plus `$tagging`) to a named contract.
fn convert_v2_contract(contract: Map<String, Value>) -> Value {
    let mut events = Map::new();
    let mut entry = Map::new();
    for (key, value) in contract {
        match value {
            Value::Number(n) if key == "$tagging" => {
                entry.insert("tagging".into(), Value::Number(n));
            }
            Value::Object(actions) => {
                events.insert(key, Value::Object(actions));
            }
            _ => {}
        }
    }
    entry.insert("events".into(), Value::Object(events));
    json!({ "default": entry })
}

/// Rewrites whole-string `$def.name` to `$var.name`; returns how many were rewritten.
fn rename_def_refs(value: &mut Value) -> usize {
    match value {
        Value::String(s) => match s.strip_prefix("$def.") {
            Some(name) if super::javascript::is_identifier(name) && !name.contains('$') => {
                *s = format!("$var.{name}");
                1
            }
            _ => 0,
        },
        Value::Array(items) => items.iter_mut().map(rename_def_refs).sum(),
        Value::Object(map) => map.values_mut().map(rename_def_refs).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn upgrade(input: Value) -> (Result<Value, String>, Vec<String>) {
        let mut diag = Diagnostics::new(Path::new("old.json"));
        let out = to_current(input, &mut diag);
        match diag.finish() {
            Ok(warnings) => (Ok(out.map(|(v, _)| v).unwrap_or(Value::Null)), warnings),
            Err(errors) => (Err(errors.to_string()), vec![]),
        }
    }

    #[test]
    fn version_2_flow_is_converted_with_a_warning() {
        let (out, warnings) = upgrade(json!({
            "version": 2,
            "definitions": {"common": {"timeout": 5}},
            "contract": {"$tagging": 3, "page": {"view": {"type": "object"}}},
            "flows": {"default": {
                "server": {},
                "packages": {"@walkeros/destination-demo": {}},
                "sources": {"http": {
                    "package": "@walkeros/server-source-express", "code": "sourceExpress"
                }},
                "destinations": {"log": {
                    "package": "@walkeros/destination-demo", "config": "$def.common"
                }}
            }}
        }));
        assert_eq!(
            out.unwrap(),
            json!({
                "version": 4,
                "variables": {"common": {"timeout": 5}},
                "contract": {"default": {
                    "tagging": 3, "events": {"page": {"view": {"type": "object"}}}
                }},
                "flows": {"default": {
                    "config": {
                        "platform": "server",
                        "bundle": {"packages": {"@walkeros/destination-demo": {}}}
                    },
                    "sources": {"http": {
                        "package": "@walkeros/server-source-express", "import": "sourceExpress"
                    }},
                    "destinations": {"log": {
                        "package": "@walkeros/destination-demo", "config": "$var.common"
                    }}
                }}
            })
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("converted flow config version 2 to version 4: "));
        assert!(warnings[0].contains("flows.default.server → flows.default.config.platform"));
    }

    #[test]
    fn version_3_bundle_and_extends_move() {
        let (out, _) = upgrade(json!({
            "version": 3,
            "contract": {"base": {}, "web": {"extends": "base"}},
            "flows": {"w": {"web": {"windowElb": "elb"}, "bundle": {"packages": {"x": {}}}}}
        }));
        let out = out.unwrap();
        assert_eq!(out["contract"]["web"], json!({"extend": "base"}));
        assert_eq!(
            out["flows"]["w"]["config"],
            json!({
                "platform": "web",
                "settings": {"windowElb": "elb"},
                "bundle": {"packages": {"x": {}}}
            })
        );
    }

    #[test]
    fn unsupported_or_missing_versions_are_errors() {
        for (input, needle) in [
            (json!({"flows": {}}), "version: missing \"version\""),
            (
                json!({"version": 5, "flows": {}}),
                "unsupported flow config version 5",
            ),
            (
                json!({"version": "4", "flows": {}}),
                "unsupported flow config version \"4\"",
            ),
            (
                json!({"version": 0, "flows": {}}),
                "unsupported flow config version 0",
            ),
            (json!([1]), "expected a JSON object at the top level"),
        ] {
            let (out, _) = upgrade(input);
            let error = out.unwrap_err();
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn flows_with_both_or_no_platform_cannot_be_converted() {
        let (out, _) = upgrade(json!({"version": 1, "flows": {"a": {"web": {}, "server": {}}}}));
        assert!(
            out.unwrap_err()
                .contains("flows.a: a version 1 flow needs exactly one")
        );
    }
}
