//! The shape of one flow: its steps, their routes and its bundle settings. Checks what the
//! original checks with its schema and its bundler's structural validators, and produces the
//! typed steps the bundler consumes.

use std::path::Path;

use serde_json::{Map, Value};

use super::error::{ConfigErrorKind, Diagnostics, child, type_name};
use super::javascript::is_identifier;
use super::packages::{PackageSpec, check_version_spec, is_package_name};
use super::value::ConfigValue;

/// Where a flow runs; decides when `$env` is read and whether `$secret` is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Browser bundle; `$env` is read when bundling, `$secret` is refused.
    Web,
    /// Server flow; `$env` and `$secret` are read when the flow starts.
    Server,
}

/// The four kinds of step a flow has, one map each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Receives events (`sources`).
    Source,
    /// Changes or filters events between steps (`transformers`).
    Transformer,
    /// Delivers events (`destinations`).
    Destination,
    /// Key-value storage other steps use through `$store.<id>` (`stores`).
    Store,
}

impl StepKind {
    /// All kinds, in the order the original collects their packages.
    pub const ALL: [StepKind; 4] = [
        StepKind::Source,
        StepKind::Destination,
        StepKind::Transformer,
        StepKind::Store,
    ];

    /// The flow's key for this kind, e.g. `sources`.
    pub fn section(self) -> &'static str {
        match self {
            Self::Source => "sources",
            Self::Transformer => "transformers",
            Self::Destination => "destinations",
            Self::Store => "stores",
        }
    }

    /// Name for messages, e.g. `Source`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Source => "Source",
            Self::Transformer => "Transformer",
            Self::Destination => "Destination",
            Self::Store => "Store",
        }
    }

    /// Keys a step of this kind may have. Sources are strict in the original schema and
    /// transformers are checked against a closed list by its bundler; unknown keys on
    /// destinations and stores are dropped by the original, so they only warn here.
    fn allowed_keys(self) -> &'static [&'static str] {
        match self {
            Self::Source => &[
                "package",
                "code",
                "import",
                "config",
                "env",
                "primary",
                "variables",
                "next",
                "before",
                "examples",
                "cache",
            ],
            Self::Transformer => &[
                "code",
                "package",
                "import",
                "before",
                "next",
                "cache",
                "state",
                "mapping",
                "config",
                "env",
                "variables",
                "examples",
                "disabled",
                "id",
                "logger",
                "mock",
                "chainMocks",
            ],
            Self::Destination => &[
                "code",
                "package",
                "import",
                "before",
                "next",
                "cache",
                "state",
                "config",
                "env",
                "variables",
                "examples",
                "disabled",
                "id",
                "logger",
                "mock",
                "chainMocks",
            ],
            Self::Store => &[
                "code",
                "package",
                "import",
                "cache",
                "config",
                "env",
                "variables",
                "examples",
                "disabled",
                "id",
                "logger",
                "mock",
                "chainMocks",
            ],
        }
    }

    fn unknown_keys_are_errors(self) -> bool {
        matches!(self, Self::Source | Self::Transformer)
    }
}

/// One resolved step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The step's key in its section; a valid JavaScript identifier.
    pub id: String,
    /// Which section it is in.
    pub kind: StepKind,
    /// Where its implementation comes from.
    pub code: StepCode,
    /// `config` with references resolved.
    pub config: Option<ConfigValue>,
    /// `env` with references resolved.
    pub env: Option<ConfigValue>,
    /// Sources only: provides the main `elb`.
    pub primary: bool,
    /// `before` route as written (validated; targets are transformer ids).
    pub before: Option<Value>,
    /// `next` route as written (validated; targets are transformer ids).
    pub next: Option<Value>,
    /// `cache` rules as written.
    pub cache: Option<Value>,
}

/// Where a step's implementation comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum StepCode {
    /// A package export.
    Package {
        /// Name of the entry in [`super::LoadedFlow::packages`].
        package: String,
        /// The `package` field as written (may carry `@version` or be a local path).
        spec: String,
        /// Named export to use instead of the default export.
        import: Option<String>,
    },
    /// Inline JavaScript.
    Inline(InlineCode),
    /// Nothing to load: a transformer that only routes, or a store wired elsewhere.
    None,
}

/// A step's inline `code` object.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineCode {
    /// Optional type name of the instance (`code.type`).
    pub kind: Option<String>,
    /// The push function's JavaScript, without the `$code:` prefix.
    pub push: String,
    /// The init function's JavaScript, without the `$code:` prefix.
    pub init: Option<String>,
}

/// A step as found in the file, before references are resolved.
pub(crate) struct RawStep<'a> {
    pub id: &'a str,
    pub kind: StepKind,
    pub path: String,
    pub body: &'a Map<String, Value>,
    pub package: Option<&'a str>,
    pub import: Option<&'a str>,
    pub code: Option<InlineCode>,
}

/// Checks the steps of the selected flow; every step that is an object is returned for
/// resolution, whether or not it passed.
pub(crate) fn check_steps<'a>(
    flow: &'a Map<String, Value>,
    flow_path: &str,
    diag: &mut Diagnostics,
) -> Vec<RawStep<'a>> {
    let transformer_ids: Vec<String> = flow
        .get("transformers")
        .and_then(Value::as_object)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();

    let mut steps = Vec::new();
    for kind in [
        StepKind::Source,
        StepKind::Transformer,
        StepKind::Destination,
        StepKind::Store,
    ] {
        let section_path = child(flow_path, kind.section());
        let Some(section) = flow.get(kind.section()) else {
            continue;
        };
        let Some(section) = section.as_object() else {
            diag.error(
                &section_path,
                ConfigErrorKind::WrongType {
                    expected: "an object of steps keyed by id",
                    found: type_name(section),
                },
            );
            continue;
        };
        for (id, body) in section {
            let path = child(&section_path, id);
            if !is_identifier(id) {
                diag.error(
                    &path,
                    ConfigErrorKind::InvalidStepId {
                        section: kind.section(),
                        id: id.clone(),
                        suggestion: camel_case(id),
                    },
                );
            }
            let Some(body) = body.as_object() else {
                diag.error(
                    &path,
                    ConfigErrorKind::WrongType {
                        expected: "a step object",
                        found: type_name(body),
                    },
                );
                continue;
            };
            steps.push(check_step(id, kind, path, body, &transformer_ids, diag));
        }
    }
    steps
}

fn check_step<'a>(
    id: &'a str,
    kind: StepKind,
    path: String,
    body: &'a Map<String, Value>,
    transformers: &[String],
    diag: &mut Diagnostics,
) -> RawStep<'a> {
    for key in body.keys() {
        if kind.allowed_keys().contains(&key.as_str()) {
            continue;
        }
        let allowed = kind.allowed_keys().join(", ");
        if kind.unknown_keys_are_errors() {
            diag.error(
                &child(&path, key),
                ConfigErrorKind::UnknownField {
                    field: key.clone(),
                    allowed,
                },
            );
        } else {
            diag.warn(
                &child(&path, key),
                format!("unknown field \"{key}\" is ignored; allowed fields are {allowed}"),
            );
        }
    }

    let package = match body.get("package") {
        None => None,
        Some(Value::String(p)) if !p.trim().is_empty() => Some(p.as_str()),
        Some(other) => {
            diag.error(
                &child(&path, "package"),
                ConfigErrorKind::WrongType {
                    expected: "a non-empty package name",
                    found: type_name(other),
                },
            );
            None
        }
    };

    let code = match body.get("code") {
        None => None,
        Some(Value::String(name)) => {
            diag.error(
                &child(&path, "code"),
                ConfigErrorKind::ObsoleteCodeString { name: name.clone() },
            );
            None
        }
        Some(Value::Object(code)) => check_inline_code(code, &child(&path, "code"), diag),
        Some(other) => {
            diag.error(
                &child(&path, "code"),
                ConfigErrorKind::WrongType {
                    expected: "an object {push, type?, init?}",
                    found: type_name(other),
                },
            );
            None
        }
    };
    let has_code = body.contains_key("code");

    let import = match body.get("import") {
        None => None,
        Some(Value::String(name)) if is_identifier(name) => Some(name.as_str()),
        Some(Value::String(name)) => {
            diag.error(
                &child(&path, "import"),
                ConfigErrorKind::InvalidIdentifier {
                    value: name.clone(),
                },
            );
            None
        }
        Some(other) => {
            diag.error(
                &child(&path, "import"),
                ConfigErrorKind::WrongType {
                    expected: "a JavaScript identifier",
                    found: type_name(other),
                },
            );
            None
        }
    };
    if body.contains_key("import") {
        if has_code {
            diag.error(&child(&path, "import"), ConfigErrorKind::ImportWithCode);
        } else if !body.contains_key("package") {
            diag.error(
                &child(&path, "import"),
                ConfigErrorKind::ImportWithoutPackage,
            );
        }
    }

    if body.contains_key("package") && has_code {
        diag.error(
            &path,
            ConfigErrorKind::PackageAndCode { kind: kind.label() },
        );
    } else if !body.contains_key("package")
        && !has_code
        && !body.contains_key("import")
        && matches!(kind, StepKind::Source | StepKind::Destination)
    {
        diag.error(
            &path,
            ConfigErrorKind::NoImplementation { kind: kind.label() },
        );
    }

    if let Some(primary) = body.get("primary")
        && !primary.is_boolean()
    {
        diag.error(
            &child(&path, "primary"),
            ConfigErrorKind::WrongType {
                expected: "true or false",
                found: type_name(primary),
            },
        );
    }
    for key in ["variables", "cache", "examples"] {
        if let Some(value) = body.get(key)
            && !value.is_object()
        {
            diag.error(
                &child(&path, key),
                ConfigErrorKind::WrongType {
                    expected: "an object",
                    found: type_name(value),
                },
            );
        }
    }
    if kind != StepKind::Store {
        let allow_many = kind != StepKind::Destination;
        for key in ["before", "next"] {
            if let Some(route) = body.get(key) {
                check_route(route, allow_many, &child(&path, key), transformers, diag);
            }
        }
    }

    // Steps with structural errors are still resolved, so their reference errors are
    // reported in the same run.
    RawStep {
        id,
        kind,
        path,
        body,
        package,
        import,
        code,
    }
}

fn check_inline_code(
    code: &Map<String, Value>,
    path: &str,
    diag: &mut Diagnostics,
) -> Option<InlineCode> {
    let function = |field: &str, diag: &mut Diagnostics| -> Option<Option<String>> {
        let field_path = child(path, field);
        match code.get(field) {
            None => Some(None),
            Some(Value::String(js)) => {
                let body = js.strip_prefix("$code:").unwrap_or(js);
                super::refs::check_code(body, &field_path, diag).then(|| Some(body.to_string()))
            }
            Some(other) => {
                diag.error(
                    &field_path,
                    ConfigErrorKind::WrongType {
                        expected: "a \"$code:\" string",
                        found: type_name(other),
                    },
                );
                None
            }
        }
    };
    let push = function("push", diag);
    let init = function("init", diag);
    let kind = match code.get("type") {
        None => Some(None),
        Some(Value::String(t)) => Some(Some(t.clone())),
        Some(other) => {
            diag.error(
                &child(path, "type"),
                ConfigErrorKind::WrongType {
                    expected: "a string",
                    found: type_name(other),
                },
            );
            None
        }
    };
    let push = match push? {
        Some(push) => push,
        None => {
            diag.error(path, ConfigErrorKind::MissingField { field: "push" });
            return None;
        }
    };
    Some(InlineCode {
        kind: kind?,
        push,
        init: init?,
    })
}

/// Route operators the original knows; `many` is only valid before the collector.
const ROUTE_KEYS: [&str; 4] = ["match", "next", "one", "many"];
const MATCH_OPERATORS: [&str; 8] = [
    "eq", "contains", "prefix", "suffix", "regex", "gt", "lt", "exists",
];

/// Checks a `next`/`before` route: a transformer id, a list of routes, or
/// `{match?, next | one | many}` / `{match}`.
fn check_route(
    route: &Value,
    allow_many: bool,
    path: &str,
    transformers: &[String],
    diag: &mut Diagnostics,
) {
    match route {
        Value::String(target) => {
            if !transformers.iter().any(|t| t == target) {
                diag.error(
                    path,
                    ConfigErrorKind::UnknownRouteTarget {
                        target: target.clone(),
                        known: transformers.to_vec(),
                    },
                );
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_route(
                    item,
                    allow_many,
                    &child(path, &i.to_string()),
                    transformers,
                    diag,
                );
            }
        }
        Value::Object(map) => {
            let invalid = |reason: String, diag: &mut Diagnostics| {
                diag.error(path, ConfigErrorKind::InvalidRoute { reason });
            };
            if let Some(key) = map.keys().find(|k| !ROUTE_KEYS.contains(&k.as_str())) {
                return invalid(
                    format!(
                        "unknown key \"{key}\"; a route object has \"match\" and one of \
                         \"next\", \"one\", \"many\""
                    ),
                    diag,
                );
            }
            let operators: Vec<&str> = ["next", "one", "many"]
                .into_iter()
                .filter(|k| map.contains_key(*k))
                .collect();
            if operators.len() > 1 {
                return invalid(
                    format!(
                        "\"{}\" cannot be combined; use one of them",
                        operators.join("\" and \"")
                    ),
                    diag,
                );
            }
            if operators.is_empty() && !map.contains_key("match") {
                return invalid(
                    "an empty route object; give \"next\", \"one\" or \"many\", or \"match\" \
                     for a gate"
                        .to_string(),
                    diag,
                );
            }
            if let Some(expression) = map.get("match") {
                check_match(expression, &child(path, "match"), diag);
            }
            if let Some(next) = map.get("next") {
                check_route(next, allow_many, &child(path, "next"), transformers, diag);
            }
            for key in ["one", "many"] {
                let Some(branches) = map.get(key) else {
                    continue;
                };
                let key_path = child(path, key);
                if key == "many" && !allow_many {
                    diag.error(
                        &key_path,
                        ConfigErrorKind::InvalidRoute {
                            reason: "\"many\" is not allowed in a destination's routes; \
                                     configure several destinations for fan-out"
                                .to_string(),
                        },
                    );
                    continue;
                }
                match branches {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            check_route(
                                item,
                                allow_many,
                                &child(&key_path, &i.to_string()),
                                transformers,
                                diag,
                            );
                        }
                    }
                    other => diag.error(
                        &key_path,
                        ConfigErrorKind::WrongType {
                            expected: "an array of routes",
                            found: type_name(other),
                        },
                    ),
                }
            }
        }
        other => diag.error(
            path,
            ConfigErrorKind::InvalidRoute {
                reason: format!(
                    "expected a transformer id, a list of routes or a route object, found {}",
                    type_name(other)
                ),
            },
        ),
    }
}

/// Checks a match expression: `{key, operator, value, not?}`, `{and: [...]}` or `{or: [...]}`.
fn check_match(expression: &Value, path: &str, diag: &mut Diagnostics) {
    let invalid = |reason: &str, diag: &mut Diagnostics| {
        diag.error(
            path,
            ConfigErrorKind::InvalidRoute {
                reason: format!("invalid match expression: {reason}"),
            },
        );
    };
    let Some(map) = expression.as_object() else {
        return invalid("expected an object", diag);
    };
    for combinator in ["and", "or"] {
        if let Some(list) = map.get(combinator) {
            let Some(items) = list.as_array().filter(|_| map.len() == 1) else {
                return invalid(
                    &format!("\"{combinator}\" takes an array of expressions and nothing else"),
                    diag,
                );
            };
            for (i, item) in items.iter().enumerate() {
                check_match(item, &child(&child(path, combinator), &i.to_string()), diag);
            }
            return;
        }
    }
    let key_ok = map.get("key").is_some_and(Value::is_string);
    let value_ok = map.get("value").is_some_and(Value::is_string);
    let operator_ok = map
        .get("operator")
        .and_then(Value::as_str)
        .is_some_and(|op| MATCH_OPERATORS.contains(&op));
    let not_ok = map.get("not").is_none_or(Value::is_boolean);
    if !(key_ok && value_ok && operator_ok && not_ok) {
        invalid(
            &format!(
                "a condition needs string \"key\" and \"value\" and an \"operator\" of {}",
                MATCH_OPERATORS.join(", ")
            ),
            diag,
        );
    }
}

/// Bundle settings of the selected flow, from its resolved `config.bundle`.
#[derive(Debug, Default)]
pub(crate) struct BundleSettings {
    pub packages: Vec<PackageSpec>,
    pub overrides: Vec<(String, String)>,
    pub trace_include: Vec<String>,
}

/// Reads `config.bundle`; package paths are resolved against `config_dir`.
pub(crate) fn read_bundle(
    bundle: &ConfigValue,
    path: &str,
    config_dir: &Path,
    diag: &mut Diagnostics,
) -> BundleSettings {
    let mut settings = BundleSettings::default();
    let Some(bundle) = bundle.as_object() else {
        diag.error(
            path,
            ConfigErrorKind::WrongType {
                expected: "an object",
                found: bundle.described(),
            },
        );
        return settings;
    };
    for (key, value) in bundle {
        let key_path = child(path, key);
        match key.as_str() {
            "packages" => settings.packages = read_packages(value, &key_path, config_dir, diag),
            "overrides" => settings.overrides = read_overrides(value, &key_path, diag),
            "traceInclude" => {
                settings.trace_include = read_strings(value, &key_path, diag);
            }
            "external" => diag.warn(
                &key_path,
                "bundle.external is no longer supported and is ignored; server bundles are \
                 traced automatically, remove it",
            ),
            _ => diag.error(
                &key_path,
                ConfigErrorKind::UnknownField {
                    field: key.clone(),
                    allowed: "packages, overrides, traceInclude".to_string(),
                },
            ),
        }
    }
    settings
}

fn read_packages(
    value: &ConfigValue,
    path: &str,
    config_dir: &Path,
    diag: &mut Diagnostics,
) -> Vec<PackageSpec> {
    let Some(entries) = plain_object(value, path, diag) else {
        return Vec::new();
    };
    let mut packages = Vec::new();
    for (name, entry) in entries {
        let entry_path = child(path, name);
        if !is_package_name(name) {
            diag.error(
                &entry_path,
                ConfigErrorKind::InvalidPackageName { name: name.clone() },
            );
            continue;
        }
        let Some(fields) = plain_object(entry, &entry_path, diag) else {
            continue;
        };
        let mut spec = PackageSpec {
            name: name.clone(),
            version_range: None,
            path: None,
            imports: Vec::new(),
        };
        for (key, field) in fields {
            let field_path = child(&entry_path, key);
            match key.as_str() {
                "version" => {
                    if let Some(version) = plain_string(field, &field_path, diag) {
                        match check_version_spec(&version) {
                            Ok(()) => spec.version_range = Some(version),
                            Err(reason) => diag.error(
                                &field_path,
                                ConfigErrorKind::InvalidVersion {
                                    package: name.clone(),
                                    version,
                                    reason,
                                },
                            ),
                        }
                    }
                }
                "path" => {
                    if let Some(local) = plain_string(field, &field_path, diag) {
                        spec.path = Some(config_dir.join(local));
                    }
                }
                "imports" => spec.imports = read_strings(field, &field_path, diag),
                _ => diag.warn(
                    &field_path,
                    format!("unknown field \"{key}\" is ignored; allowed: version, imports, path"),
                ),
            }
        }
        packages.push(spec);
    }
    packages
}

fn read_overrides(
    value: &ConfigValue,
    path: &str,
    diag: &mut Diagnostics,
) -> Vec<(String, String)> {
    let Some(entries) = plain_object(value, path, diag) else {
        return Vec::new();
    };
    let mut overrides = Vec::new();
    for (name, version) in entries {
        let entry_path = child(path, name);
        if !is_package_name(name) {
            diag.error(
                &entry_path,
                ConfigErrorKind::InvalidPackageName { name: name.clone() },
            );
            continue;
        }
        let Some(version) = plain_string(version, &entry_path, diag) else {
            continue;
        };
        match check_version_spec(&version) {
            Ok(()) => overrides.push((name.clone(), version)),
            Err(reason) => diag.error(
                &entry_path,
                ConfigErrorKind::InvalidVersion {
                    package: name.clone(),
                    version,
                    reason,
                },
            ),
        }
    }
    overrides
}

fn read_strings(value: &ConfigValue, path: &str, diag: &mut Diagnostics) -> Vec<String> {
    match value {
        ConfigValue::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| plain_string(item, &child(path, &i.to_string()), diag))
            .collect(),
        other => {
            wrong_bundle_type("an array of strings", other, path, diag);
            Vec::new()
        }
    }
}

fn plain_object<'v>(
    value: &'v ConfigValue,
    path: &str,
    diag: &mut Diagnostics,
) -> Option<&'v indexmap::IndexMap<String, ConfigValue>> {
    match value {
        ConfigValue::Object(map) => Some(map),
        other => {
            wrong_bundle_type("an object", other, path, diag);
            None
        }
    }
}

fn plain_string(value: &ConfigValue, path: &str, diag: &mut Diagnostics) -> Option<String> {
    match value {
        ConfigValue::String(s) => Some(s.clone()),
        other => {
            wrong_bundle_type("a string", other, path, diag);
            None
        }
    }
}

fn wrong_bundle_type(
    expected: &'static str,
    found: &ConfigValue,
    path: &str,
    diag: &mut Diagnostics,
) {
    if matches!(found, ConfigValue::Runtime(_)) {
        diag.error(path, ConfigErrorKind::RuntimeValueInBundle);
    } else {
        diag.error(
            path,
            ConfigErrorKind::WrongType {
                expected,
                found: found.described(),
            },
        );
    }
}

/// The camelCase spelling the original suggests for an invalid id (`my-dest` → `myDest`),
/// with anything else that is not allowed removed.
fn camel_case(id: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in id.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
            if upper {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
            upper = false;
        } else {
            upper = !out.is_empty();
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step_errors(kind: StepKind, body: Value) -> Vec<String> {
        let flow = json!({
            "transformers": {"enrich": {"code": {"push": "$code:(e) => ({event: e})"}}},
            kind.section(): {"step": body}
        });
        let mut diag = Diagnostics::new(Path::new("f.json"));
        check_steps(flow.as_object().unwrap(), "flows.f", &mut diag);
        match diag.finish() {
            Ok(_) => vec![],
            Err(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.json_path, e.kind))
                .collect(),
        }
    }

    #[test]
    fn step_ids_must_be_identifiers() {
        let flow =
            json!({"destinations": {"gtag-wrapper": {"package": "x"}, "9lives": {"package": "x"}}});
        let mut diag = Diagnostics::new(Path::new("f.json"));
        check_steps(flow.as_object().unwrap(), "flows.f", &mut diag);
        let text = diag.finish().unwrap_err().to_string();
        assert!(
            text.contains("Invalid destinations name \"gtag-wrapper\""),
            "{text}"
        );
        assert!(text.contains("e.g. \"gtagWrapper\""), "{text}");
        assert!(text.contains("e.g. \"_9lives\""), "{text}");
    }

    #[test]
    fn package_code_and_import_rules_follow_the_original() {
        assert_eq!(
            step_errors(
                StepKind::Source,
                json!({"package": "x", "import": "sourceX"})
            ),
            Vec::<String>::new()
        );
        let cases = [
            (StepKind::Destination, json!({}), "must specify either"),
            (
                StepKind::Destination,
                json!({"package": "x", "code": {"push": "$code:(e)=>e"}}),
                "both \"package\" and \"code\"",
            ),
            (
                StepKind::Source,
                json!({"code": "sourceExpress"}),
                "no longer supported",
            ),
            (
                StepKind::Source,
                json!({"code": {"push": "$code:(e)=>e"}, "import": "x"}),
                "cannot be combined",
            ),
            (
                StepKind::Destination,
                json!({"import": "x"}),
                "requires \"package\"",
            ),
            (
                StepKind::Source,
                json!({"package": "x", "import": "not-ident"}),
                "not a valid JavaScript identifier",
            ),
            (
                StepKind::Source,
                json!({"package": "x", "terminus": true}),
                "unknown field \"terminus\"",
            ),
            (
                StepKind::Destination,
                json!({"code": {"type": "x"}}),
                "\"push\" is missing",
            ),
            (
                StepKind::Destination,
                json!({"code": {"push": "$code:(e) => {"}}),
                "does not parse",
            ),
        ];
        for (kind, body, needle) in cases {
            let errors = step_errors(kind, body.clone());
            assert!(
                errors.iter().any(|e| e.contains(needle)),
                "{body}: {errors:?}"
            );
        }
        // An empty transformer is a valid no-op step.
        assert_eq!(
            step_errors(StepKind::Transformer, json!({})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn routes_must_name_transformers_and_keep_their_shape() {
        let ok = json!({"package": "x", "next": [
            "enrich",
            {"match": {"key": "name", "operator": "prefix", "value": "page"}, "next": "enrich"},
            {"one": ["enrich"]}
        ]});
        assert_eq!(step_errors(StepKind::Source, ok), Vec::<String>::new());
        let cases = [
            (
                StepKind::Source,
                json!({"package": "x", "next": "enrihc"}),
                "next: route target \"enrihc\" is not a transformer",
            ),
            (
                StepKind::Destination,
                json!({"package": "x", "before": {"many": ["enrich"]}}),
                "before.many: invalid route: \"many\" is not allowed",
            ),
            (
                StepKind::Source,
                json!({"package": "x", "next": {"next": "enrich", "one": []}}),
                "cannot be combined",
            ),
            (
                StepKind::Source,
                json!({"package": "x", "next": {}}),
                "an empty route object",
            ),
            (
                StepKind::Source,
                json!({"package": "x", "next": {
                    "match": {"key": "a", "operator": "like", "value": "b"}
                }}),
                "invalid match expression",
            ),
            (
                StepKind::Source,
                json!({"package": "x", "next": 3}),
                "expected a transformer id",
            ),
        ];
        for (kind, body, needle) in cases {
            let errors = step_errors(kind, body.clone());
            assert!(
                errors.iter().any(|e| e.contains(needle)),
                "{body}: {errors:?}"
            );
        }
    }

    #[test]
    fn bundle_packages_are_checked_and_paths_resolved() {
        let bundle = ConfigValue::from_json(&json!({
            "packages": {
                "@walkeros/collector": {"version": "4.2.1", "imports": ["startFlow"]},
                "local": {"path": "./pkgs/local"},
                "Bad_Name": {},
                "@walkeros/x": {"version": "^4.2.1.0"}
            },
            "overrides": {"zod": "3.23.8"},
            "external": ["x"]
        }));
        let mut diag = Diagnostics::new(Path::new("f.json"));
        let settings = read_bundle(
            &bundle,
            "flows.f.config.bundle",
            Path::new("/etc/flows"),
            &mut diag,
        );
        assert_eq!(
            settings.packages.len(),
            3,
            "entries with a bad version are still listed"
        );
        assert_eq!(settings.packages[0].imports, ["startFlow"]);
        assert_eq!(
            settings.packages[1].path.as_deref(),
            Some(Path::new("/etc/flows/./pkgs/local"))
        );
        assert_eq!(
            settings.overrides,
            [("zod".to_string(), "3.23.8".to_string())]
        );
        let text = diag.finish().unwrap_err().to_string();
        assert!(
            text.contains("packages.Bad_Name: \"Bad_Name\" is not a valid npm package name"),
            "{text}"
        );
        assert!(
            text.contains("packages.@walkeros/x.version: version \"^4.2.1.0\""),
            "{text}"
        );
    }

    #[test]
    fn camel_case_suggestions() {
        assert_eq!(camel_case("gtag-wrapper"), "gtagWrapper");
        assert_eq!(camel_case("my dest.v2"), "myDestV2");
        assert_eq!(camel_case("-"), "_");
    }
}
