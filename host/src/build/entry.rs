//! The flow's entry module: from a [`LoadedFlow`] to the JavaScript esbuild bundles, the
//! packages it needs and the manifest the host reads.
//!
//! The entry mirrors what the original bundler generates for a server flow: one import per step
//! package (the default export under a name derived from the package, or the step's `import`),
//! `startFlow` from `@walkeros/collector`, and a function that wires sources, destinations,
//! transformers, stores and the collector settings into `startFlow`'s config, with inline code,
//! `$env`, `$secret` and `$store` written as JavaScript. Where the original exports a factory,
//! this entry exports the handlers of the sandbox contract: `init` starts the flow, `push`
//! hands one event to the collector and returns its result, `ingest` runs one HTTP request's
//! events through the flow's HTTP source, `shutdown` stops it.
//!
//! HTTP sources (`@walkeros/server-source-express`, `@walkeros/server-source-fetch`) are not
//! bundled: the host serves HTTP itself and lists them in the manifest. In the collector they
//! are registered with their config as written and a small factory of the entry's own, which
//! keeps the source's `withScope` so that `ingest` can push each request's events with the
//! request's scope, as the express source does.

use std::collections::BTreeMap;
use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::javascript::{self, CodeSpan, JsWriter, child, string_literal};
use super::npm::{self, Request};
use crate::config::{
    COLLECTOR_PACKAGE, ConfigValue, InlineCode, LoadedFlow, Platform, Step, StepCode, StepKind,
    package_variable_name,
};

/// Source packages the host replaces with its own HTTP intake; they are neither fetched nor
/// bundled (the express source is not even published to the public registry).
pub const NATIVE_SOURCE_PACKAGES: [&str; 2] = [
    "@walkeros/server-source-express",
    "@walkeros/server-source-fetch",
];

/// The handlers every generated entry exports.
pub const EXPORTS: [&str; 4] = ["init", "push", "ingest", "shutdown"];

/// What the host needs to know about a flow without running it; written next to the bundle as
/// `flow.json` and kept with it in the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The flowhost version that generated the bundle.
    pub flowhost_version: String,
    /// The flow's name in its config.
    pub flow: String,
    /// `server` (the only platform flowhost runs).
    pub platform: String,
    /// The bundle's handler exports.
    pub exports: Vec<String>,
    /// Sources the host serves natively, in config order.
    pub native_sources: Vec<NativeSource>,
    /// The packages at the top of the bundle's `node_modules`, with their exact versions.
    pub packages: Vec<PackageVersion>,
    /// The bundle cache key: same key, same bundle.
    pub key: String,
}

/// A source served by the host, with its config as written (run-time values as the config
/// module's `$flowhost` marker objects, resolved by the host when it starts the source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeSource {
    /// The step id.
    pub id: String,
    /// The package it replaces.
    pub package: String,
    /// Whether it is the flow's primary source.
    pub primary: bool,
    /// Its `config`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Its `env`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<serde_json::Value>,
    /// Its `before` route, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// Its `next` route, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<serde_json::Value>,
}

/// A resolved package and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageVersion {
    /// The name it is imported by.
    pub name: String,
    /// The exact version installed.
    pub version: String,
}

/// Why a loaded flow cannot become an entry module.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    /// A web flow: it belongs in a browser, not in the server sandbox.
    #[error(
        "flows.{flow}.config.platform: flow \"{flow}\" is a web flow; flowhost runs server \
         flows only (set \"platform\": \"server\", or bundle web flows with the walkerOS CLI)"
    )]
    WebFlow {
        /// The flow's name.
        flow: String,
    },
    /// Two packages are imported under one name.
    #[error(
        "`{name}` is imported from both {first} and {second}; give one of the steps another \
         `import`, or drop one name from a `bundle.packages.<name>.imports` list"
    )]
    DuplicateImport {
        /// The identifier.
        name: String,
        /// The first package that binds it.
        first: String,
        /// The second package.
        second: String,
    },
    /// A package entry that cannot be installed as written.
    #[error("{json_path}: {error}")]
    Package {
        /// Where the package is declared.
        json_path: String,
        /// What the npm client says.
        error: npm::NpmError,
    },
}

/// A flow turned into an entry module and the packages it needs.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The config file the flow came from.
    pub file: std::path::PathBuf,
    /// The entry's source, without the release line ([`Entry::with_release`] adds it).
    pub source: String,
    /// Where the inline code landed in `source`.
    pub code_spans: Vec<CodeSpan>,
    /// The packages to install, in the flow's order.
    pub requests: Vec<Request>,
    /// Transitive version pins (`config.bundle.overrides`).
    pub overrides: npm::Overrides,
    /// The manifest, without packages and key (known after resolution).
    pub manifest: Manifest,
}

/// Name of the constant that holds the release stamped on the collector when the flow sets
/// none; defined by the line [`Entry::with_release`] appends.
const RELEASE_CONST: &str = "__flowhostRelease";

impl Entry {
    /// The complete module: the source plus the release constant, appended last so the lines
    /// of inline code keep their numbers.
    pub fn with_release(&self, release: &str) -> String {
        format!(
            "{}\nconst {RELEASE_CONST} = {};\n",
            self.source,
            string_literal(release)
        )
    }
}

/// One import statement's bindings for a package.
#[derive(Debug, Default)]
struct Imports {
    /// Default-import names (a step's derived variable, `default as X` entries).
    defaults: Vec<String>,
    /// Named imports.
    named: Vec<String>,
}

/// Plans the entry of `flow`: the requests to install and the module source.
pub fn plan(flow: &LoadedFlow) -> Result<Entry, Vec<PlanError>> {
    let mut errors = Vec::new();
    if flow.platform == Platform::Web {
        errors.push(PlanError::WebFlow {
            flow: flow.name.clone(),
        });
        return Err(errors);
    }
    let base_dir = flow.file.parent().unwrap_or(Path::new("."));
    let flow_path = child("flows", &flow.name);

    // Install names: registry packages by their name, local directories by the name in their
    // package.json (a step's `./path` is listed under a synthetic key).
    let mut requests = Vec::new();
    let mut install_names: BTreeMap<String, String> = BTreeMap::new();
    for package in &flow.packages {
        if is_native(&package.name) {
            continue;
        }
        let json_path = child(
            &child(&child(&flow_path, "config"), "bundle.packages"),
            &package.name,
        );
        let request = match &package.path {
            Some(dir) if npm::validate_name(&package.name).is_ok() => {
                Ok(Request::local(package.name.clone(), dir.clone()))
            }
            // A step's `./path`: the npm client reads the name from the directory's
            // package.json when the spec looks like a path.
            Some(dir) => {
                let spec = if dir.is_absolute() {
                    dir.display().to_string()
                } else {
                    format!("./{}", dir.display())
                };
                Request::from_flow_package(&spec, None, None, Path::new(""))
            }
            None => Request::from_flow_package(
                &package.name,
                package.version_range.as_deref(),
                None,
                base_dir,
            ),
        };
        match request {
            Ok(request) => {
                install_names.insert(package.name.clone(), request.name.clone());
                requests.push(request);
            }
            Err(error) => errors.push(PlanError::Package { json_path, error }),
        }
    }
    let install_name = |package: &str| {
        install_names
            .get(package)
            .cloned()
            .unwrap_or_else(|| package.to_string())
    };

    // Imports: what each step binds, the packages' `imports` lists, and startFlow; one
    // statement per package in the flow's package order, as the original writes them.
    let mut imports: IndexMap<String, Imports> = requests
        .iter()
        .map(|request| (request.name.clone(), Imports::default()))
        .collect();
    let mut step_vars: BTreeMap<(&'static str, String), String> = BTreeMap::new();
    for step in bundled_steps(flow) {
        let StepCode::Package {
            package, import, ..
        } = &step.code
        else {
            continue;
        };
        let name = install_name(package);
        let entry = imports.entry(name.clone()).or_default();
        let var = match import {
            Some(export) => {
                push_unique(&mut entry.named, export);
                export.clone()
            }
            None => {
                let var = default_variable(&name);
                push_unique(&mut entry.defaults, &var);
                var
            }
        };
        step_vars.insert((step.kind.section(), step.id.clone()), var);
    }
    for package in &flow.packages {
        if is_native(&package.name) || package.imports.is_empty() {
            continue;
        }
        let entry = imports.entry(install_name(&package.name)).or_default();
        for import in &package.imports {
            match import.strip_prefix("default as ") {
                Some(var) => push_unique(&mut entry.defaults, var.trim()),
                None => push_unique(&mut entry.named, import),
            }
        }
    }
    push_unique(
        &mut imports
            .entry(install_name(COLLECTOR_PACKAGE))
            .or_default()
            .named,
        "startFlow",
    );
    check_duplicate_bindings(&imports, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }

    let (source, code_spans) = generate(flow, &imports, &step_vars, &flow_path);
    let native_sources = flow.sources.iter().filter_map(native_source).collect();
    Ok(Entry {
        file: flow.file.clone(),
        source,
        code_spans,
        requests,
        overrides: flow.overrides.iter().cloned().collect(),
        manifest: Manifest {
            flowhost_version: env!("CARGO_PKG_VERSION").to_string(),
            flow: flow.name.clone(),
            platform: "server".to_string(),
            exports: EXPORTS.iter().map(|e| e.to_string()).collect(),
            native_sources,
            packages: Vec::new(),
            key: String::new(),
        },
    })
}

fn is_native(package: &str) -> bool {
    NATIVE_SOURCE_PACKAGES.contains(&package)
}

/// The `type` of the source instance standing in for a native source package, as the package's
/// own instance names itself.
fn native_source_type(package: &str) -> &'static str {
    if package == "@walkeros/server-source-fetch" {
        "fetch"
    } else {
        "express"
    }
}

/// Name of the entry's factory for HTTP source instances (defined in [`HANDLERS`]).
const HTTP_SOURCE_FACTORY: &str = "__flowhostHttpSource";

/// The variable of a package's default import; the original's name when it is an identifier
/// (it always is for registry names), else a sanitised one.
fn default_variable(package: &str) -> String {
    let var = package_variable_name(package);
    let mut out: String = var
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|i| i == item) {
        list.push(item.to_string());
    }
}

fn check_duplicate_bindings(imports: &IndexMap<String, Imports>, errors: &mut Vec<PlanError>) {
    let mut bound: BTreeMap<&str, &str> = BTreeMap::new();
    for (package, set) in imports {
        for name in set.defaults.iter().chain(&set.named) {
            match bound.get(name.as_str()) {
                Some(first) if *first != package => errors.push(PlanError::DuplicateImport {
                    name: name.clone(),
                    first: first.to_string(),
                    second: package.clone(),
                }),
                Some(_) => {}
                None => {
                    bound.insert(name, package);
                }
            }
        }
    }
}

/// Steps whose package the bundle imports: all but the HTTP sources the host serves.
fn bundled_steps(flow: &LoadedFlow) -> impl Iterator<Item = &Step> {
    flow.steps().filter(|step| native_source(step).is_none())
}

fn native_source(step: &Step) -> Option<NativeSource> {
    let StepCode::Package { package, .. } = &step.code else {
        return None;
    };
    if step.kind != StepKind::Source || !is_native(package) {
        return None;
    }
    let json = |value: &ConfigValue| serde_json::to_value(value).unwrap_or_default();
    Some(NativeSource {
        id: step.id.clone(),
        package: package.clone(),
        primary: step.primary,
        config: step.config.as_ref().map(json),
        env: step.env.as_ref().map(json),
        before: step.before.clone(),
        next: step.next.clone(),
    })
}

/// Writes the module.
fn generate(
    flow: &LoadedFlow,
    imports: &IndexMap<String, Imports>,
    step_vars: &BTreeMap<(&'static str, String), String>,
    flow_path: &str,
) -> (String, Vec<CodeSpan>) {
    let mut js = JsWriter::new();
    js.line(
        0,
        &format!("// Flow \"{}\", generated by flowhost.", flow.name),
    );
    for (package, set) in imports {
        let from = string_literal(package);
        for var in &set.defaults {
            js.line(0, &format!("import {var} from {from};"));
        }
        if !set.named.is_empty() {
            js.line(
                0,
                &format!("import {{ {} }} from {from};", set.named.join(", ")),
            );
        }
    }
    js.push("\n");
    js.push(&javascript::secret_guard_source());
    js.push("\n");

    // The config is built by a function, so each start gets fresh objects and `$env` is read
    // when the flow starts, not when the module loads.
    js.line(0, "function __flowhostWireConfig() {");
    js.push("  const stores = {");
    write_steps(&mut js, flow, StepKind::Store, step_vars, flow_path);
    js.push("};\n");
    js.push("  return {\n    sources: {");
    write_steps(&mut js, flow, StepKind::Source, step_vars, flow_path);
    js.push("},\n    destinations: {");
    write_steps(&mut js, flow, StepKind::Destination, step_vars, flow_path);
    js.push("},\n");
    if !flow.transformers.is_empty() {
        js.push("    transformers: {");
        write_steps(&mut js, flow, StepKind::Transformer, step_vars, flow_path);
        js.push("},\n");
    }
    js.push("    stores");
    let collector = collector_settings(flow);
    js.push(",\n    ...");
    js.value(&collector, &child(flow_path, "collector"), 2);
    js.push("\n  };\n}\n\n");

    js.push(HANDLERS);
    js.finish()
}

/// The collector settings with the original's provenance: `name` is the flow's name and
/// `release` a stamp of this bundle, unless the flow sets them.
fn collector_settings(flow: &LoadedFlow) -> ConfigValue {
    let mut settings = match &flow.collector {
        Some(ConfigValue::Object(map)) => map.clone(),
        _ => IndexMap::new(),
    };
    settings
        .entry("name".to_string())
        .or_insert_with(|| ConfigValue::String(flow.name.clone()));
    settings
        .entry("release".to_string())
        .or_insert_with(|| ConfigValue::Code(RELEASE_CONST.to_string()));
    ConfigValue::Object(settings)
}

/// Writes the object entries of one section's steps (`id: {...}`), or nothing. HTTP sources get
/// the entry's factory as their code.
fn write_steps(
    js: &mut JsWriter,
    flow: &LoadedFlow,
    kind: StepKind,
    step_vars: &BTreeMap<(&'static str, String), String>,
    flow_path: &str,
) {
    let steps: Vec<&Step> = flow
        .steps()
        .filter(|step| step.kind == kind)
        .filter(|step| {
            // Code-less steps are wired only as transformers (routing); stores without code
            // are provided elsewhere.
            !matches!(step.code, StepCode::None) || kind == StepKind::Transformer
        })
        .collect();
    if steps.is_empty() {
        return;
    }
    js.push("\n");
    for (i, step) in steps.iter().enumerate() {
        let path = child(&child(flow_path, kind.section()), &step.id);
        js.push(&format!("      {}: ", string_literal(&step.id)));
        match &step.code {
            StepCode::Inline(inline) => write_inline_step(js, step, inline, &path),
            StepCode::Package { package, .. } if kind == StepKind::Source && is_native(package) => {
                let factory = format!(
                    "{HTTP_SOURCE_FACTORY}({})",
                    string_literal(native_source_type(package))
                );
                write_step_object(js, step, Some(&factory), &path, true);
            }
            StepCode::Package { .. } => {
                let var = step_vars
                    .get(&(kind.section(), step.id.clone()))
                    .map(String::as_str)
                    .unwrap_or("undefined");
                write_step_object(js, step, Some(var), &path, true);
            }
            StepCode::None => write_step_object(js, step, None, &path, false),
        }
        js.push(if i + 1 < steps.len() { ",\n" } else { "\n" });
    }
    js.push("    ");
}

/// `{code: <var>, config, env, primary, before, next, cache}` for a package step (with the
/// fields it has), or the wiring fields alone for a code-less transformer.
fn write_step_object(
    js: &mut JsWriter,
    step: &Step,
    code: Option<&str>,
    path: &str,
    with_primary: bool,
) {
    let mut fields: Vec<(&str, FieldValue<'_>)> = Vec::new();
    if let Some(var) = code {
        fields.push(("code", FieldValue::Raw(var.to_string())));
    }
    if let Some(config) = &step.config {
        fields.push(("config", FieldValue::Config(config)));
    }
    if let Some(env) = &step.env {
        fields.push(("env", FieldValue::Config(env)));
    }
    if with_primary && step.primary {
        fields.push(("primary", FieldValue::Raw("true".to_string())));
    }
    for (name, value) in [
        ("before", &step.before),
        ("next", &step.next),
        ("cache", &step.cache),
    ] {
        if let Some(value) = value {
            fields.push((name, FieldValue::Json(value)));
        }
    }
    write_fields(js, &fields, path);
}

/// An inline step, as the original writes it: sources, transformers and stores get a factory
/// returning the instance, destinations the instance itself.
fn write_inline_step(js: &mut JsWriter, step: &Step, inline: &InlineCode, path: &str) {
    let code_path = child(path, "code");
    let empty = ConfigValue::Object(IndexMap::new());
    let config = step.config.as_ref().unwrap_or(&empty);
    let env = step.env.as_ref().unwrap_or(&empty);

    js.push("{\n        code: ");
    if step.kind == StepKind::Destination {
        js.push("{\n");
    } else {
        js.push("async (context) => ({\n");
    }
    if let Some(kind) = &inline.kind {
        js.line(5, &format!("type: {},", string_literal(kind)));
    }
    if step.kind == StepKind::Destination {
        js.push("          config: ");
        js.value(config, &child(path, "config"), 5);
        js.push(",\n");
    } else {
        js.line(5, "config: context.config,");
    }
    if let Some(init) = &inline.init {
        js.push("          init: ");
        js.code(init, &child(&code_path, "init"));
        js.push(",\n");
    }
    js.push("          push: ");
    js.code(&inline.push, &child(&code_path, "push"));
    js.push("\n        ");
    js.push(if step.kind == StepKind::Destination {
        "}"
    } else {
        "})"
    });

    let mut fields: Vec<(&str, FieldValue<'_>)> = vec![
        ("config", FieldValue::Config(config)),
        ("env", FieldValue::Config(env)),
    ];
    let (before, next) = match step.kind {
        StepKind::Source => (None, step.next.as_ref()),
        StepKind::Store => (None, None),
        _ => (step.before.as_ref(), step.next.as_ref()),
    };
    if let Some(before) = before {
        fields.push(("before", FieldValue::Json(before)));
    }
    if let Some(next) = next {
        fields.push(("next", FieldValue::Json(next)));
    }
    for (name, value) in &fields {
        js.push(&format!(",\n        {name}: "));
        write_field(js, value, &child(path, name));
    }
    js.push("\n      }");
}

enum FieldValue<'a> {
    /// JavaScript as is.
    Raw(String),
    /// A resolved config value.
    Config(&'a ConfigValue),
    /// JSON kept as written (routes, cache rules).
    Json(&'a serde_json::Value),
}

fn write_fields(js: &mut JsWriter, fields: &[(&str, FieldValue<'_>)], path: &str) {
    js.push("{");
    for (i, (name, value)) in fields.iter().enumerate() {
        js.push(&format!("\n        {name}: "));
        write_field(js, value, &child(path, name));
        if i + 1 < fields.len() {
            js.push(",");
        }
    }
    js.push("\n      }");
}

fn write_field(js: &mut JsWriter, value: &FieldValue<'_>, path: &str) {
    match value {
        FieldValue::Raw(text) => js.push(text),
        FieldValue::Config(value) => js.value(value, path, 4),
        FieldValue::Json(value) => js.value(&ConfigValue::from_json(value), path, 4),
    }
}

/// The sandbox handlers; the shim turns what they return into JSON (errors as their name and
/// message).
///
/// `push` goes through the collector's own `elb` source, which accepts an event object (or an
/// event name) and `walker <command>` strings as the walkerOS `elb` does.
///
/// `ingest` is the express source's request handler without the HTTP: one `withScope` per
/// request, so the source's `ingest` mapping reads the request scope and every step sees the
/// resulting `ingest` and a `respond`, then each event pushed in submission order and awaited
/// in turn (the source does the same in both of its modes). Only the slim result of each push
/// leaves the guest, and the first `respond` call (the source's createRespond is first call
/// wins) goes back with them.
///
/// Collector 4.2.1 answers an event it refuses as invalid with a bare `{ok: false}` and names
/// the reason only in its `push failed` log line, which carries the scope's `ingest` object;
/// the entry notes the reason there so the host can answer 400 with it, as later collectors
/// (which return `{ok: false, invalid: true, error}`) let the express source do.
const HANDLERS: &str = r#"let __flowhostFlow;

/** The HTTP sources' contexts by step id, kept by the factory for `ingest`. */
const __flowhostHttpSources = new Map();

/** Why the collector refused the last event of a scope, by the scope's ingest object. */
const __flowhostPushErrors = new WeakMap();

/** The collector's own words for an event it cannot take (createEvent). */
const __flowhostInvalid = new Set(["Event name is required", "Event name is invalid"]);

function __flowhostHttpSource(type) {
  return async (context) => {
    __flowhostHttpSources.set(context.id, context);
    return { type, config: context.config, push: (event) => context.env.push(event) };
  };
}

function __flowhostNotePushErrors(logger) {
  const error = logger.error;
  logger.error = (message, context) => {
    if (message === "push failed" && context?.ingest && context.error instanceof Error) {
      __flowhostPushErrors.set(context.ingest, context.error.message);
    }
    return error(message, context);
  };
}

function __flowhostOutcome(result, ingest) {
  if (result?.ok !== false) {
    const id = result?.event?.id;
    return id === undefined ? { ok: true } : { ok: true, id };
  }
  const noted = __flowhostPushErrors.get(ingest);
  __flowhostPushErrors.delete(ingest);
  const error = result.error ?? noted;
  if (result.invalid === true || __flowhostInvalid.has(error)) {
    return { ok: false, error: error ?? "Invalid event", invalid: true };
  }
  return result.error === undefined ? { ok: false } : { ok: false, error: result.error };
}

function __flowhostAnswer(options) {
  const { status, headers, body } = options !== null && typeof options === "object" ? options : {};
  const answer = {};
  if (status !== undefined) answer.status = status;
  if (headers !== undefined) answer.headers = headers;
  if (body instanceof Uint8Array) {
    let text = "";
    for (let i = 0; i < body.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, body.subarray(i, i + 0x8000));
    }
    answer.body = btoa(text);
    answer.bodyEncoding = "base64";
  } else if (body !== undefined) {
    answer.body = body;
  }
  return answer;
}

export async function init() {
  const flow = await startFlow(__flowhostWireConfig());
  __flowhostNotePushErrors(flow.collector.logger);
  __flowhostFlow = flow;
}

export async function push(event) {
  const flow = __flowhostFlow;
  if (!flow) throw new Error("the flow has not started");
  const elb = flow.collector.sources?.elb?.push ?? flow.collector.push;
  return elb(event);
}

export async function ingest({ source, events, batch, bodyFromEvents, scope }) {
  const http = __flowhostHttpSources.get(source);
  if (!http) throw new Error(`the flow has no HTTP source "${source}"`);
  if (bodyFromEvents) scope.body = batch ? events : events[0];
  let responded;
  const respond = (options = {}) => {
    if (responded === undefined) responded = options;
  };
  const results = await http.withScope(scope, respond, async (env) => {
    const results = [];
    for (const event of events) results.push(__flowhostOutcome(await env.push(event), env.ingest));
    return results;
  });
  return responded === undefined ? results : { results, respond: __flowhostAnswer(responded) };
}

export async function shutdown() {
  const flow = __flowhostFlow;
  __flowhostFlow = undefined;
  __flowhostHttpSources.clear();
  if (flow) await flow.collector.command("shutdown");
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_flow_config;
    use crate::config::{LoadOptions, load_flow_config};
    use serde_json::json;

    const BENCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/configs/valid");

    fn load(json: serde_json::Value) -> LoadedFlow {
        parse_flow_config(
            &json.to_string(),
            Path::new("/flows/flow.json"),
            &LoadOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn the_api_flow_imports_its_destination_but_not_the_express_source() {
        let flow = load_flow_config(&Path::new(BENCH).join("collect-api.json"), None).unwrap();
        let entry = plan(&flow).unwrap();
        let names: Vec<&str> = entry.requests.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["@walkeros/collector", "@walkeros/server-destination-api"]
        );
        assert!(
            entry
                .source
                .contains(r#"import { startFlow } from "@walkeros/collector";"#)
        );
        assert!(
            entry
                .source
                .contains(r#"import { destinationAPI } from "@walkeros/server-destination-api";"#)
        );
        assert!(!entry.source.contains("server-source-express"));
        assert!(
            entry
                .source
                .contains(r#"code: __flowhostHttpSource("express")"#),
            "{}",
            entry.source
        );
        assert!(entry.source.contains(r#""api": {"#));
        assert!(entry.source.contains("code: destinationAPI"));
        assert!(
            entry
                .source
                .contains(r#"(process.env["SINK_URL"] ?? "http://127.0.0.1:9901/sink")"#)
        );
        assert_eq!(entry.manifest.native_sources.len(), 1);
        let http = &entry.manifest.native_sources[0];
        assert_eq!(http.id, "http");
        assert_eq!(
            http.config.as_ref().unwrap()["settings"]["path"],
            "/collect"
        );
    }

    #[test]
    fn http_sources_keep_their_whole_config_and_get_the_entry_factory() {
        let flow = load(json!({"version": 4, "flows": {"f": {
            "config": {"platform": "server"},
            "sources": {"intake": {
                "package": "@walkeros/server-source-fetch",
                "primary": true,
                "config": {
                    "settings": {"paths": ["/e"]},
                    "ingest": {"map": {"ip": "ip", "agent": "headers.user-agent"}},
                    "mapping": {"page": {"view": {"name": "page viewed"}}},
                    "consent": {"analytics": true},
                    "async": false
                },
                "env": {"tenant": "$env.TENANT:t1"},
                "next": "stamp"
            }},
            "transformers": {"stamp": {"code": {"push": "$code:(e) => ({ event: e })"}}},
            "destinations": {"d": {"code": {"push": "$code:() => {}"}}}
        }}}));
        let entry = plan(&flow).unwrap();
        let source = &entry.source;
        let names: Vec<&str> = entry.requests.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["@walkeros/collector"],
            "the fetch source is not fetched"
        );
        let start = source.find(r#""intake": {"#).expect("the source is wired");
        let wired = &source[start..source[start..].find("destinations:").unwrap() + start];
        for expected in [
            r#"code: __flowhostHttpSource("fetch")"#,
            r#""paths": ["#,
            r#""ingest": {"#,
            r#""agent": "headers.user-agent""#,
            r#""name": "page viewed""#,
            r#""analytics": true"#,
            r#""async": false"#,
            r#"(process.env["TENANT"] ?? "t1")"#,
            "primary: true",
            r#"next: "stamp""#,
        ] {
            assert!(wired.contains(expected), "{expected} in {wired}");
        }
        assert!(source.contains("export async function ingest("));
        assert_eq!(entry.manifest.exports, EXPORTS);
        assert_eq!(entry.manifest.native_sources[0].id, "intake");
    }

    #[test]
    fn inline_destinations_become_instances_and_sources_factories() {
        let flow = load(json!({
            "version": 4,
            "flows": {"f": {
                "config": {"platform": "server"},
                "sources": {"s": {"code": {"push": "$code:(e) => e", "type": "t"}, "next": "t1"}},
                "transformers": {"t1": {"code": {"push": "$code:(e) => ({ event: e })"}}},
                "destinations": {"d": {
                    "code": {"push": "$code:(e) => { globalThis.seen = e; }", "init": "$code:() => true"},
                    "config": {"settings": {"key": "$secret.API_KEY"}}
                }},
                "collector": {"globals": {"g": 1}, "release": "r1"}
            }}
        }));
        let entry = plan(&flow).unwrap();
        let source = &entry.source;
        assert!(source.contains("async (context) => ({"), "{source}");
        assert!(source.contains("config: context.config,"), "{source}");
        assert!(source.contains(r#"type: "t","#), "{source}");
        assert!(
            source.contains(r#"__flowhostRequireSecret("API_KEY", process.env["API_KEY"])"#),
            "{source}"
        );
        assert!(source.contains(r#""release": "r1""#), "{source}");
        assert!(source.contains(r#""name": "f""#), "{source}");
        assert!(source.contains(r#"next: "t1""#), "{source}");
        assert!(!source.contains("__flowhostRelease\n"), "{source}");
        let push = entry
            .code_spans
            .iter()
            .find(|s| s.json_path == "flows.f.destinations.d.code.push")
            .unwrap();
        let line = source.lines().nth(push.first_line - 1).unwrap();
        assert_eq!(line, "(e) => { globalThis.seen = e; }");
    }

    #[test]
    fn web_flows_and_clashing_imports_are_refused() {
        let web = load(json!({"version": 4, "flows": {"w": {
            "config": {"platform": "web"},
            "destinations": {"d": {"code": {"push": "$code:() => {}"}}}
        }}}));
        assert!(matches!(
            plan(&web).unwrap_err().as_slice(),
            [PlanError::WebFlow { .. }]
        ));

        let clash = load(json!({"version": 4, "flows": {"f": {
            "config": {"platform": "server"},
            "destinations": {
                "a": {"package": "@x/a", "import": "destination"},
                "b": {"package": "@x/b", "import": "destination"}
            }
        }}}));
        let errors = plan(&clash).unwrap_err();
        assert!(
            matches!(errors.as_slice(), [PlanError::DuplicateImport { name, .. }] if name == "destination"),
            "{errors:?}"
        );
    }

    #[test]
    fn package_import_lists_add_named_and_default_bindings() {
        let flow = load(json!({"version": 4, "flows": {"f": {
            "config": {"platform": "server", "bundle": {"packages": {
                "@walkeros/core": {"version": "4.2.1", "imports": ["getId", "default as core"]}
            }}},
            "destinations": {"d": {"package": "@walkeros/destination-demo"}}
        }}}));
        let entry = plan(&flow).unwrap();
        assert!(
            entry
                .source
                .contains(r#"import { getId } from "@walkeros/core";"#)
        );
        assert!(
            entry
                .source
                .contains(r#"import core from "@walkeros/core";"#)
        );
        assert!(
            entry
                .source
                .contains(r#"import _walkerosDestinationDemo from "@walkeros/destination-demo";"#)
        );
    }
}
