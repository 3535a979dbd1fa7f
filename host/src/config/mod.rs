//! Flow config loading: reads a walkerOS flow config (version 4, or 1 to 3 converted with a
//! warning), selects one flow, checks its steps, routes and packages, and resolves references
//! into a [`LoadedFlow`] the bundler turns into the flow's entry module.
//!
//! `$var`, `$flow` and `$contract` are substituted here. `$env` and `$secret` are not: a server
//! flow reads them from its `process.env` when it starts inside the guest, so they stay in the
//! resolved tree as [`RuntimeRef`]s (the loader only checks `$env` against an environment when
//! the caller passes one). `$code:` JavaScript is checked only for balanced brackets, quotes
//! and comments; QuickJS compiling the bundle is the authoritative check. This module does not
//! download packages, generate code or read secrets.
//!
//! Every problem is reported as a [`ConfigError`] naming the file, the JSON path and what to do;
//! loading goes on after most problems so one run lists all of them.

mod contract;
mod error;
mod flow;
mod javascript;
mod packages;
mod refs;
mod upgrade;
mod value;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use error::{ConfigError, ConfigErrorKind, ConfigErrors};
pub use flow::{InlineCode, Platform, Step, StepCode, StepKind};
pub use packages::{
    COLLECTOR_PACKAGE, PackageSpec, check_version_spec, is_package_name, package_variable_name,
    split_package_spec,
};
pub use upgrade::CURRENT_VERSION;
pub use value::{ConfigValue, RuntimeRef, TemplatePart};

use error::{Diagnostics, child, type_name};
use refs::{Resolver, Scope};

/// How to load a flow config.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// Flow to select (`--flow` / `FLOW_NAME`); needed when the file has several flows.
    pub flow_name: Option<&'a str>,
    /// Environment the flow will run with. When given, every `$env.NAME` without default must
    /// be set in it, and web flows take their `$env` values from it. When `None`, `$env` is
    /// not checked (the environment is only known where the flow runs).
    pub env: Option<&'a HashMap<String, String>>,
}

/// One flow of a config, checked and with references resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedFlow {
    /// The file it came from.
    pub file: PathBuf,
    /// The selected flow's name.
    pub name: String,
    /// Names of all flows in the file, in file order.
    pub available_flows: Vec<String>,
    /// The `version` the file was written in (1 to 3 were converted to 4).
    pub source_version: u64,
    /// Where the flow runs.
    pub platform: Platform,
    /// `config.url`: where the flow is reachable, if set.
    pub url: Option<ConfigValue>,
    /// `config.settings`: free-form platform settings, if set.
    pub settings: Option<ConfigValue>,
    /// `config.observe`: telemetry settings, if set.
    pub observe: Option<ConfigValue>,
    /// Sources in file order.
    pub sources: Vec<Step>,
    /// Transformers in file order.
    pub transformers: Vec<Step>,
    /// Destinations in file order.
    pub destinations: Vec<Step>,
    /// Stores in file order.
    pub stores: Vec<Step>,
    /// `collector` init settings, resolved.
    pub collector: Option<ConfigValue>,
    /// Every package the bundle needs: `config.bundle.packages`, then `@walkeros/collector`
    /// if the flow has sources or destinations, then the steps' packages.
    pub packages: Vec<PackageSpec>,
    /// `config.bundle.overrides`: transitive dependency pins.
    pub overrides: Vec<(String, String)>,
    /// `config.bundle.traceInclude`: extra files the server bundle must carry.
    pub trace_include: Vec<String>,
    /// Root `include`: folders copied next to the bundle.
    pub include: Vec<String>,
    /// Things that were accepted but deserve attention (also logged at WARN).
    pub warnings: Vec<String>,
}

impl LoadedFlow {
    /// All steps: sources, transformers, destinations, stores.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.sources
            .iter()
            .chain(&self.transformers)
            .chain(&self.destinations)
            .chain(&self.stores)
    }
}

/// Loads flow `flow_name` (or the only flow) from the file at `path`, without checking `$env`
/// against an environment.
pub fn load_flow_config(path: &Path, flow_name: Option<&str>) -> Result<LoadedFlow, ConfigErrors> {
    load_flow_config_with(
        path,
        &LoadOptions {
            flow_name,
            env: None,
        },
    )
}

/// Loads a flow config file with explicit options.
pub fn load_flow_config_with(
    path: &Path,
    options: &LoadOptions<'_>,
) -> Result<LoadedFlow, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_flow_config(&text, path, options),
        Err(e) => {
            let mut diag = Diagnostics::new(path);
            diag.error(
                "",
                ConfigErrorKind::Read {
                    reason: e.to_string(),
                },
            );
            diag.finish_with::<LoadedFlow>(None).map(|(flow, _)| flow)
        }
    }
}

/// Loads a flow config from text; `file` names it in errors (for a config fetched from the
/// API, pass e.g. the flow id) and anchors relative package paths.
pub fn parse_flow_config(
    text: &str,
    file: &Path,
    options: &LoadOptions<'_>,
) -> Result<LoadedFlow, ConfigErrors> {
    let mut diag = Diagnostics::new(file);
    let loaded = load(text, file, options, &mut diag);
    let (mut flow, warnings) = diag.finish_with(loaded)?;
    for warning in &warnings {
        tracing::warn!(file = %file.display(), flow = %flow.name, "{warning}");
    }
    flow.warnings = warnings;
    Ok(flow)
}

fn load(
    text: &str,
    file: &Path,
    options: &LoadOptions<'_>,
    diag: &mut Diagnostics,
) -> Option<LoadedFlow> {
    // Stages that make everything after them meaningless end loading at once: unreadable
    // JSON, an unknown version, no flow to select.
    let root: Value = match serde_json::from_str(text) {
        Ok(root) => root,
        Err(e) => {
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = e.to_string();
            diag.error(
                "",
                ConfigErrorKind::Json {
                    line: e.line(),
                    column: e.column(),
                    reason: message
                        .strip_suffix(&suffix)
                        .unwrap_or(&message)
                        .to_string(),
                },
            );
            return None;
        }
    };
    let (root, source_version) = upgrade::to_current(root, diag)?;
    let root = root.as_object()?;
    let include = check_root(root, diag);
    let flows = match root.get("flows") {
        Some(Value::Object(flows)) => flows,
        None => {
            diag.error("flows", ConfigErrorKind::MissingField { field: "flows" });
            return None;
        }
        Some(other) => {
            diag.error(
                "flows",
                ConfigErrorKind::WrongType {
                    expected: "an object of flows keyed by name",
                    found: type_name(other),
                },
            );
            return None;
        }
    };
    let available: Vec<String> = flows.keys().cloned().collect();
    let name = select_flow(&available, options.flow_name, diag)?;
    let flow_path = child("flows", &name);
    for (other, value) in flows {
        if !value.is_object() {
            diag.error(
                &child("flows", other),
                ConfigErrorKind::WrongType {
                    expected: "a flow object",
                    found: type_name(value),
                },
            );
        }
    }
    let flow = flows.get(&name)?.as_object()?;

    // Structure first: what the original's schema and its bundler's validators check.
    check_flow_keys(flow, &flow_path, diag);
    let platform = read_platform(flow, &flow_path, &name, diag);
    let raw_steps = flow::check_steps(flow, &flow_path, diag);

    // Then references, in the original's order: contracts (which may use variables), the
    // flow's own config block, the collector, and each step with its variable layer on top.
    let root_vars = root.get("variables").and_then(Value::as_object);
    let flow_vars = flow.get("variables").and_then(Value::as_object);
    let store_ids: Vec<String> = flow
        .get("stores")
        .and_then(Value::as_object)
        .map(|stores| stores.keys().cloned().collect())
        .unwrap_or_default();
    let mut resolver = Resolver::new(
        root_vars,
        flows,
        &name,
        options.env,
        platform == Some(Platform::Web),
        store_ids,
    );
    if let Some(contracts) = root.get("contract") {
        let mut scope = Scope::new(&[root_vars, flow_vars], false);
        if let Some(ConfigValue::Object(map)) =
            resolver.resolve(contracts, &mut scope, "contract", diag)
        {
            resolver.set_contracts(contract::resolve_contracts(&map, "contract", diag));
        }
    }
    let mut flow_scope = Scope::new(&[root_vars, flow_vars], true);
    let config_path = child(&flow_path, "config");
    let config = flow
        .get("config")
        .and_then(|c| resolver.resolve(c, &mut flow_scope, &config_path, diag));
    let collector_path = child(&flow_path, "collector");
    let collector = flow
        .get("collector")
        .and_then(|c| resolver.resolve(c, &mut flow_scope, &collector_path, diag));
    if let Some(collector) = &collector {
        check_collector(collector, &collector_path, diag);
    }

    let steps = resolve_steps(raw_steps, &mut resolver, [root_vars, flow_vars], diag);

    // Finally the typed parts of the config block and the package set.
    let config_dir = file.parent().unwrap_or(Path::new("."));
    let block = read_config_block(config.as_ref(), &config_path, config_dir, diag);
    let step_packages: Vec<packages::StepPackage> = StepKind::ALL
        .iter()
        .flat_map(|kind| steps.iter().filter(move |step| step.raw.kind == *kind))
        .filter_map(|step| {
            step.raw.package.map(|spec| packages::StepPackage {
                spec: spec.to_string(),
                json_path: child(&step.raw.path, "package"),
            })
        })
        .collect();
    let has_steps = |section: &str| {
        flow.get(section)
            .and_then(Value::as_object)
            .is_some_and(|s| !s.is_empty())
    };
    let needs_collector = has_steps("sources") || has_steps("destinations");
    let (packages, package_names) = packages::merge_step_packages(
        block.bundle.packages,
        &step_packages,
        needs_collector,
        config_dir,
        diag,
    );

    let mut loaded = LoadedFlow {
        file: file.to_path_buf(),
        name,
        available_flows: available,
        source_version,
        platform: platform.unwrap_or(Platform::Server),
        url: block.url,
        settings: block.settings,
        observe: block.observe,
        sources: Vec::new(),
        transformers: Vec::new(),
        destinations: Vec::new(),
        stores: Vec::new(),
        collector,
        packages,
        overrides: block.bundle.overrides,
        trace_include: block.bundle.trace_include,
        include,
        warnings: Vec::new(),
    };
    for ResolvedStep { raw, config, env } in steps {
        let code = match (raw.code, raw.package) {
            (Some(inline), _) => StepCode::Inline(inline),
            (None, Some(spec)) => StepCode::Package {
                package: package_names
                    .get(spec)
                    .cloned()
                    .unwrap_or_else(|| spec.to_string()),
                spec: spec.to_string(),
                import: raw.import.map(str::to_string),
            },
            (None, None) => StepCode::None,
        };
        let step = Step {
            id: raw.id.to_string(),
            kind: raw.kind,
            code,
            config,
            env,
            primary: raw.body.get("primary").and_then(Value::as_bool) == Some(true),
            before: raw.body.get("before").cloned(),
            next: raw.body.get("next").cloned(),
            cache: raw.body.get("cache").cloned(),
        };
        match raw.kind {
            StepKind::Source => loaded.sources.push(step),
            StepKind::Transformer => loaded.transformers.push(step),
            StepKind::Destination => loaded.destinations.push(step),
            StepKind::Store => loaded.stores.push(step),
        }
    }
    Some(loaded)
}

/// A step with its `config` and `env` resolved.
struct ResolvedStep<'a> {
    raw: flow::RawStep<'a>,
    config: Option<ConfigValue>,
    env: Option<ConfigValue>,
}

/// Resolves each step's `config` and `env` with the step's variables over `outer_vars`
/// (root, then flow).
fn resolve_steps<'a>(
    raw_steps: Vec<flow::RawStep<'a>>,
    resolver: &mut Resolver<'_>,
    outer_vars: [Option<&'a Map<String, Value>>; 2],
    diag: &mut Diagnostics,
) -> Vec<ResolvedStep<'a>> {
    let mut steps = Vec::with_capacity(raw_steps.len());
    for raw in raw_steps {
        let step_vars = raw.body.get("variables").and_then(Value::as_object);
        let mut scope = Scope::new(&[outer_vars[0], outer_vars[1], step_vars], true);

        let config_path = child(&raw.path, "config");
        let config = raw
            .body
            .get("config")
            .and_then(|c| resolver.resolve(c, &mut scope, &config_path, diag));
        // Only transformers take any JSON as config; the other kinds need an object.
        if raw.kind != StepKind::Transformer
            && let Some(value) = &config
            && !matches!(value, ConfigValue::Object(_))
        {
            config_type(&config_path, "an object", value, diag);
        }

        let env_path = child(&raw.path, "env");
        let env = raw
            .body
            .get("env")
            .and_then(|e| resolver.resolve(e, &mut scope, &env_path, diag));
        steps.push(ResolvedStep { raw, config, env });
    }
    steps
}

/// Checks the root object's fields other than `version` and `flows`; returns `include`.
fn check_root(root: &Map<String, Value>, diag: &mut Diagnostics) -> Vec<String> {
    let mut include = Vec::new();
    for (key, value) in root {
        match key.as_str() {
            "version" | "flows" => {}
            "$schema" if !value.is_string() => wrong_type(key, "a URL string", value, diag),
            "$schema" => {}
            "include" => match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        match item.as_str() {
                            Some(folder) => include.push(folder.to_string()),
                            None => {
                                wrong_type(&child(key, &i.to_string()), "a folder path", item, diag)
                            }
                        }
                    }
                }
                None => wrong_type(key, "an array of folder paths", value, diag),
            },
            "variables" if !value.is_object() => wrong_type(key, "an object", value, diag),
            "variables" => {}
            "contract" => check_contracts(value, diag),
            "definitions" => diag.warn(
                key,
                "\"definitions\" is ignored since flow config version 4; move the entries to \
                 \"variables\" and reference them with $var",
            ),
            _ => diag.warn(key, format!("unknown top-level field \"{key}\" is ignored")),
        }
    }
    include
}

fn check_contracts(value: &Value, diag: &mut Diagnostics) {
    let Some(contracts) = value.as_object() else {
        return wrong_type("contract", "an object of named contracts", value, diag);
    };
    for (name, entry) in contracts {
        let path = child("contract", name);
        let Some(entry) = entry.as_object() else {
            wrong_type(&path, "a contract object", entry, diag);
            continue;
        };
        for (key, expected) in [
            ("extend", "a contract name"),
            ("description", "a string"),
            ("tagging", "a number"),
            ("events", "an object"),
            ("schema", "an object"),
        ] {
            let Some(field) = entry.get(key) else {
                continue;
            };
            let ok = match key {
                "extend" | "description" => field.is_string() || is_reference(field),
                "tagging" => field.is_number() || is_reference(field),
                _ => field.is_object() || is_reference(field),
            };
            if !ok {
                wrong_type(&child(&path, key), expected, field, diag);
            }
        }
    }
}

/// A string that a reference may turn into any type.
fn is_reference(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.starts_with('$'))
}

const FLOW_KEYS: [&str; 7] = [
    "config",
    "sources",
    "destinations",
    "transformers",
    "stores",
    "collector",
    "variables",
];

fn check_flow_keys(flow: &Map<String, Value>, flow_path: &str, diag: &mut Diagnostics) {
    for (key, value) in flow {
        let path = child(flow_path, key);
        if !FLOW_KEYS.contains(&key.as_str()) {
            diag.warn(
                &path,
                format!(
                    "unknown field \"{key}\" is ignored; a flow has {}",
                    FLOW_KEYS.join(", ")
                ),
            );
        } else if key == "variables" && !value.is_object() {
            wrong_type(&path, "an object", value, diag);
        }
    }
}

fn read_platform(
    flow: &Map<String, Value>,
    flow_path: &str,
    name: &str,
    diag: &mut Diagnostics,
) -> Option<Platform> {
    let config_path = child(flow_path, "config");
    let missing = ConfigErrorKind::MissingPlatform {
        flow: name.to_string(),
    };
    let config = match flow.get("config") {
        None => {
            diag.error(&config_path, missing);
            return None;
        }
        Some(Value::Object(config)) => config,
        Some(other) => {
            wrong_type(&config_path, "an object", other, diag);
            return None;
        }
    };
    let platform_path = child(&config_path, "platform");
    match config.get("platform") {
        None => {
            diag.error(&platform_path, missing);
            None
        }
        Some(Value::String(p)) if p == "web" => Some(Platform::Web),
        Some(Value::String(p)) if p == "server" => Some(Platform::Server),
        Some(other) => {
            diag.error(
                &platform_path,
                ConfigErrorKind::InvalidPlatform {
                    found: other.to_string(),
                },
            );
            None
        }
    }
}

/// The typed fields of a flow's resolved `config` block.
#[derive(Default)]
struct ConfigBlock {
    url: Option<ConfigValue>,
    settings: Option<ConfigValue>,
    observe: Option<ConfigValue>,
    bundle: flow::BundleSettings,
}

fn read_config_block(
    config: Option<&ConfigValue>,
    path: &str,
    config_dir: &Path,
    diag: &mut Diagnostics,
) -> ConfigBlock {
    let mut block = ConfigBlock::default();
    let Some(ConfigValue::Object(config)) = config else {
        return block;
    };
    for (key, value) in config {
        let key_path = child(path, key);
        match key.as_str() {
            "platform" => {}
            "url" => {
                match value {
                    ConfigValue::String(url) if url.is_empty() => diag.error(
                        &key_path,
                        ConfigErrorKind::WrongType {
                            expected: "a non-empty URL",
                            found: "an empty string",
                        },
                    ),
                    ConfigValue::String(_) | ConfigValue::Runtime(_) => {}
                    other => config_type(&key_path, "a URL string", other, diag),
                }
                block.url = Some(value.clone());
            }
            "settings" => {
                if !matches!(value, ConfigValue::Object(_)) {
                    config_type(&key_path, "an object", value, diag);
                }
                block.settings = Some(value.clone());
            }
            "observe" => {
                check_observe(value, &key_path, diag);
                block.observe = Some(value.clone());
            }
            "bundle" => block.bundle = flow::read_bundle(value, &key_path, config_dir, diag),
            _ => diag.warn(
                &key_path,
                format!(
                    "unknown field \"{key}\" is ignored; config has platform, url, settings, \
                     bundle, observe"
                ),
            ),
        }
    }
    block
}

/// Checks the types of the collector settings the bundler passes to `startFlow`; fields
/// the collector does not know are passed on unchanged, as in the original.
fn check_collector(value: &ConfigValue, path: &str, diag: &mut Diagnostics) {
    let Some(collector) = value.as_object() else {
        return config_type(path, "an object", value, diag);
    };
    for (key, field) in collector {
        // Values read at run time cannot be checked here.
        if matches!(field, ConfigValue::Runtime(_)) {
            continue;
        }
        let expected = match key.as_str() {
            "run" if !matches!(field, ConfigValue::Bool(_)) => "true or false",
            "queueMax" if !is_positive_integer(field) => "a positive whole number",
            "name" | "release" if !matches!(field, ConfigValue::String(_)) => "a string",
            "consent" | "user" | "globals" | "globalsStatic" | "sessionStatic" | "custom"
            | "hooks"
                if !matches!(field, ConfigValue::Object(_)) =>
            {
                "an object"
            }
            _ => continue,
        };
        config_type(&child(path, key), expected, field, diag);
    }
}

fn is_positive_integer(value: &ConfigValue) -> bool {
    matches!(value, ConfigValue::Number(n) if n.as_u64().is_some_and(|n| n > 0))
}

fn check_observe(value: &ConfigValue, path: &str, diag: &mut Diagnostics) {
    let Some(observe) = value.as_object() else {
        return config_type(path, "an object", value, diag);
    };
    for (key, field) in observe {
        let key_path = child(path, key);
        let ok = match key.as_str() {
            "level" => matches!(field.as_str(), Some("off" | "standard" | "trace")),
            "sample" => matches!(field, ConfigValue::Number(n)
                if n.as_f64().is_some_and(|s| (0.0..=1.0).contains(&s))),
            "url" | "binding" => field.as_str().is_some_and(|s| !s.is_empty()),
            _ => {
                diag.warn(&key_path, format!("unknown field \"{key}\" is ignored"));
                true
            }
        };
        if !ok {
            let expected = match key.as_str() {
                "level" => "\"off\", \"standard\" or \"trace\"",
                "sample" => "a number from 0 to 1",
                _ => "a non-empty string",
            };
            config_type(&key_path, expected, field, diag);
        }
    }
}

fn config_type(path: &str, expected: &'static str, found: &ConfigValue, diag: &mut Diagnostics) {
    diag.error(
        path,
        ConfigErrorKind::WrongType {
            expected,
            found: found.described(),
        },
    );
}

fn wrong_type(path: &str, expected: &'static str, found: &Value, diag: &mut Diagnostics) {
    diag.error(
        path,
        ConfigErrorKind::WrongType {
            expected,
            found: type_name(found),
        },
    );
}

/// Picks the flow to load the way the original CLI does: the only flow is used whatever name
/// was asked for (with a warning here), several flows need a name that exists.
fn select_flow(
    available: &[String],
    requested: Option<&str>,
    diag: &mut Diagnostics,
) -> Option<String> {
    let requested = requested.filter(|name| !name.is_empty());
    match available {
        [] => {
            diag.error("flows", ConfigErrorKind::NoFlows);
            None
        }
        [only] => {
            if let Some(name) = requested
                && name != only
            {
                diag.warn(
                    "flows",
                    format!(
                        "flow \"{name}\" was requested but the config has only flow \"{only}\"; \
                         using \"{only}\""
                    ),
                );
            }
            Some(only.clone())
        }
        _ => match requested {
            None => {
                diag.error(
                    "flows",
                    ConfigErrorKind::MultipleFlows {
                        available: available.to_vec(),
                    },
                );
                None
            }
            Some(name) if available.iter().any(|a| a == name) => Some(name.to_string()),
            Some(name) => {
                diag.error(
                    "flows",
                    ConfigErrorKind::UnknownFlow {
                        name: name.to_string(),
                        available: available.to_vec(),
                    },
                );
                None
            }
        },
    }
}

#[cfg(test)]
mod tests;
