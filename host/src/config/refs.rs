//! Reference resolution: turns raw JSON into [`ConfigValue`]s, substituting `$var`, `$flow` and
//! `$contract`, and marking `$env`, `$secret`, `$store.` and `$code:` for the bundler.
//!
//! Order and semantics follow the original resolver (`packages/core/src/flow.ts`): a string that
//! is exactly `$var.a(.b)`, `$contract.c(.d)`, `$flow.f(.g)` or `$secret.S` is replaced by the
//! value (keeping its JSON type); otherwise `$var.a` inside the string is replaced by scalar
//! text, then `$env.NAME[:default]` becomes a run-time read. Variables resolve recursively
//! with cycle detection. `$code:` strings are taken verbatim (no `$env` inside JavaScript,
//! which reads `process.env` itself). Where the original would silently produce broken output
//! (a secret inside a longer string, `$contract` without contracts, an unknown `$store`) this
//! module reports an error.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::Value;

use super::error::{ConfigErrorKind, Diagnostics, child};
use super::javascript::{check_syntax, is_identifier};
use super::value::{ConfigValue, RuntimeRef, TemplatePart};

/// Nesting levels followed while resolving (JSON levels plus `$var`/`$flow` hops) before giving
/// up. The JSON parser already stops at 128 levels; this bounds chains of references so a
/// hostile config cannot exhaust the stack.
const MAX_DEPTH: usize = 300;

/// How much resolving may produce in one load, in values plus one per 16 bytes of string.
/// Variables can use each other many times over, so a small file can describe a huge tree (the
/// "billion laughs" pattern); real flows stay orders of magnitude below this. Arbitrary.
const MAX_RESOLVED_SIZE: usize = 1_000_000;

const CODE_PREFIX: &str = "$code:";

type RawMap = serde_json::Map<String, Value>;

/// The variables visible at one place (root < flow < step) and what was already resolved there.
pub(crate) struct Scope<'v> {
    vars: IndexMap<&'v str, &'v Value>,
    /// Whether `$contract` references are resolved here; the original does not consult
    /// contracts while it resolves another flow's `config` for a `$flow` reference.
    contracts: bool,
    /// Variables resolved in this scope; `None` when resolving failed (already reported).
    cache: HashMap<String, Option<ConfigValue>>,
}

impl<'v> Scope<'v> {
    /// A scope whose later layers override earlier ones.
    pub(crate) fn new(layers: &[Option<&'v RawMap>], contracts: bool) -> Self {
        let mut vars = IndexMap::new();
        for layer in layers.iter().flatten() {
            for (name, value) in layer.iter() {
                vars.insert(name.as_str(), value);
            }
        }
        Self {
            vars,
            contracts,
            cache: HashMap::new(),
        }
    }
}

/// Where in a chain of references the resolver is.
#[derive(Default)]
struct Chain {
    /// Variables being resolved, outermost first; a repeat is a cycle.
    vars: Vec<String>,
    /// JSON levels plus reference hops so far, see [`MAX_DEPTH`].
    depth: usize,
}

/// Resolves references for one selected flow.
pub(crate) struct Resolver<'a> {
    /// Root `variables`, the first layer of every scope.
    root_vars: Option<&'a RawMap>,
    /// All flows of the file, for `$flow` references.
    flows: &'a RawMap,
    /// Resolved root `contract`, once set; `None` when the file has none.
    contracts: Option<IndexMap<String, ConfigValue>>,
    /// Environment to check `$env` against (and, for web flows, to read values from).
    env: Option<&'a HashMap<String, String>>,
    /// The selected flow is a web flow: `$secret` is refused and `$env` is baked in.
    web: bool,
    /// Store ids of the selected flow, for `$store.` references.
    stores: Vec<String>,
    /// Other flows' resolved `config` blocks; `None` when resolving failed (reported).
    flow_cache: HashMap<String, Option<ConfigValue>>,
    /// Flows whose `config` is being resolved; starts with the selected flow.
    flow_stack: Vec<String>,
    /// The depth limit is reported once, not at every place it cuts off.
    depth_reported: bool,
    /// What substituted references may still add, see [`MAX_RESOLVED_SIZE`].
    size_left: usize,
    /// The size limit is reported once.
    size_reported: bool,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(
        root_vars: Option<&'a RawMap>,
        flows: &'a RawMap,
        selected: &str,
        env: Option<&'a HashMap<String, String>>,
        web: bool,
        stores: Vec<String>,
    ) -> Self {
        Self {
            root_vars,
            flows,
            contracts: None,
            env,
            web,
            stores,
            flow_cache: HashMap::new(),
            flow_stack: vec![selected.to_string()],
            depth_reported: false,
            size_left: MAX_RESOLVED_SIZE,
            size_reported: false,
        }
    }

    /// Sets the resolved contracts `$contract` reads from.
    pub(crate) fn set_contracts(&mut self, contracts: IndexMap<String, ConfigValue>) {
        self.contracts = Some(contracts);
    }

    /// Resolves `value` found at `path`; `None` when something in it could not be resolved
    /// (recorded in `diag`).
    pub(crate) fn resolve(
        &mut self,
        value: &Value,
        scope: &mut Scope<'_>,
        path: &str,
        diag: &mut Diagnostics,
    ) -> Option<ConfigValue> {
        self.value(value, scope, path, &mut Chain::default(), diag)
    }

    fn value(
        &mut self,
        value: &Value,
        scope: &mut Scope<'_>,
        path: &str,
        chain: &mut Chain,
        diag: &mut Diagnostics,
    ) -> Option<ConfigValue> {
        if chain.depth >= MAX_DEPTH {
            if !self.depth_reported {
                self.depth_reported = true;
                diag.error(path, ConfigErrorKind::TooDeep { limit: MAX_DEPTH });
            }
            return None;
        }
        chain.depth += 1;
        let result = match value {
            Value::String(s) => self.string(s, scope, path, chain, diag),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    let item_path = child(path, &i.to_string());
                    match self.value(item, scope, &item_path, chain, diag) {
                        Some(v) => out.push(v),
                        None => ok = false,
                    }
                }
                ok.then_some(ConfigValue::Array(out))
            }
            Value::Object(map) => {
                let mut out = IndexMap::with_capacity(map.len());
                let mut ok = true;
                for (key, item) in map {
                    match self.value(item, scope, &child(path, key), chain, diag) {
                        Some(v) => {
                            out.insert(key.clone(), v);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(ConfigValue::Object(out))
            }
            scalar => Some(ConfigValue::from_json(scalar)),
        };
        chain.depth -= 1;
        result
    }

    fn string(
        &mut self,
        s: &str,
        scope: &mut Scope<'_>,
        path: &str,
        chain: &mut Chain,
        diag: &mut Diagnostics,
    ) -> Option<ConfigValue> {
        // Whole-string references keep the referenced value's JSON type.
        if let Some(reference) = s.strip_prefix("$var.").filter(|r| is_dotted_identifier(r)) {
            return self.var_reference(reference, scope, path, chain, diag);
        }
        if scope.contracts
            && let Some((name, sub)) = parse_contract_ref(s)
        {
            return self.contract_reference(name, sub, path, diag);
        }
        if let Some((name, sub)) = parse_flow_ref(s) {
            return self.flow_reference(name, sub, path, chain, diag);
        }
        if let Some(name) = s.strip_prefix("$secret.") {
            return self.secret(s, name, path, diag);
        }
        if let Some(id) = s.strip_prefix("$store.") {
            return self.store(id, path, diag);
        }
        if s.contains("$def.") {
            diag.warn(
                path,
                "\"$def.\" references are not resolved since flow config version 4; \
                 move the definition to \"variables\" and use $var",
            );
        }

        let pieces = self.inline_vars(s, scope, path, chain, diag)?;

        // Inline code is taken verbatim: no `$env` substitution inside JavaScript, which can
        // read process.env itself.
        if let [Piece::Text(text)] = pieces.as_slice()
            && let Some(body) = text.strip_prefix(CODE_PREFIX)
        {
            return check_code(body, path, diag).then(|| ConfigValue::Code(body.to_string()));
        }
        if matches!(pieces.first(), Some(Piece::Text(t)) if t.starts_with(CODE_PREFIX)) {
            diag.error(
                path,
                ConfigErrorKind::InvalidCode {
                    reason: "a $code: string cannot take $var values that are only known at run \
                             time; read process.env inside the function instead"
                        .to_string(),
                },
            );
            return None;
        }
        if pieces
            .iter()
            .any(|p| matches!(p, Piece::Text(t) if t.contains("$secret.")))
        {
            diag.error(
                path,
                ConfigErrorKind::InvalidSecretRef {
                    text: s.to_string(),
                },
            );
            return None;
        }

        self.env_refs(pieces, path, diag)
    }

    fn var_reference(
        &mut self,
        reference: &str,
        scope: &mut Scope<'_>,
        path: &str,
        chain: &mut Chain,
        diag: &mut Diagnostics,
    ) -> Option<ConfigValue> {
        let (name, deep) = match reference.split_once('.') {
            Some((name, deep)) => (name, Some(deep)),
            None => (reference, None),
        };
        let value = self.variable(name, scope, path, chain, diag)?;
        match deep {
            None => Some(value),
            Some(deep) => walk_path(&value, deep, &format!("$var.{name}"), path, diag),
        }
    }

    fn variable(
        &mut self,
        name: &str,
        scope: &mut Scope<'_>,
        path: &str,
        chain: &mut Chain,
        diag: &mut Diagnostics,
    ) -> Option<ConfigValue> {
        if let Some(cached) = scope.cache.get(name) {
            return match cached {
                Some(value) if self.charge(value, path, diag) => Some(value.clone()),
                _ => None,
            };
        }
        let Some(raw) = scope.vars.get(name).copied() else {
            diag.error(
                path,
                ConfigErrorKind::VariableNotFound {
                    name: name.to_string(),
                    via: chain.vars.clone(),
                },
            );
            return None;
        };
        if chain.vars.iter().any(|v| v == name) {
            let mut cycle = chain.vars.clone();
            cycle.push(name.to_string());
            diag.error(
                path,
                ConfigErrorKind::VariableCycle {
                    chain: cycle.join(" -> "),
                },
            );
            return None;
        }

        chain.vars.push(name.to_string());
        let mut resolved = self.value(raw, scope, path, chain, diag);
        chain.vars.pop();
        if let Some(value) = &resolved
            && !self.charge(value, path, diag)
        {
            resolved = None;
        }
        scope.cache.insert(name.to_string(), resolved.clone());
        resolved
    }

    /// Counts a substituted value against [`MAX_RESOLVED_SIZE`]; false (reported once) when
    /// the budget is used up.
    fn charge(&mut self, value: &ConfigValue, path: &str, diag: &mut Diagnostics) -> bool {
        let mut pending = vec![value];
        while let Some(value) = pending.pop() {
            let cost = 1 + match value {
                ConfigValue::String(s) | ConfigValue::Code(s) | ConfigValue::Store(s) => {
                    s.len() / 16
                }
                _ => 0,
            };
            if cost > self.size_left {
                if !self.size_reported {
                    self.size_reported = true;
                    diag.error(
                        path,
                        ConfigErrorKind::TooLarge {
                            limit: MAX_RESOLVED_SIZE,
                        },
                    );
                }
                self.size_left = 0;
                return false;
            }
            self.size_left -= cost;
            match value {
                ConfigValue::Array(items) => pending.extend(items),
                ConfigValue::Object(map) => pending.extend(map.values()),
                _ => {}
            }
        }
        true
    }

    fn contract_reference(
        &mut self,
        name: &str,
        sub: Option<&str>,
        path: &str,
        diag: &mut Diagnostics,
    ) -> Option<ConfigValue> {
        let known = || -> Vec<String> {
            self.contracts
                .as_ref()
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default()
        };
        let Some(contract) = self.contracts.as_ref().and_then(|c| c.get(name)) else {
            diag.error(
                path,
                ConfigErrorKind::ContractNotFound {
                    name: name.to_string(),
                    known: known(),
                },
            );
            return None;
        };
        let contract = contract.clone();
        if !self.charge(&contract, path, diag) {
            return None;
        }
        match sub {
            None => Some(contract),
            Some(sub) => walk_path(&contract, sub, &format!("$contract.{name}"), path, diag),
        }
    }

    fn flow_reference(
        &mut self,
        name: &str,
        sub: Option<&str>,
        path: &str,
        chain: &mut Chain,
        diag: &mut Diagnostics,
    ) -> Option<ConfigValue> {
        let config = self.flow_config(name, path, chain, diag)?;
        if !self.charge(&config, path, diag) {
            return None;
        }
        match sub {
            None => Some(config),
            Some(sub) => walk_path(&config, sub, &format!("$flow.{name}"), path, diag),
        }
    }

    /// Resolves another flow's `config` block, as `$flow.<name>` reads it.
    fn flow_config(
        &mut self,
        name: &str,
        path: &str,
        chain: &mut Chain,
        diag: &mut Diagnostics,
    ) -> Option<ConfigValue> {
        if let Some(cached) = self.flow_cache.get(name) {
            return cached.clone();
        }
        let Some(flow) = self.flows.get(name) else {
            diag.error(
                path,
                ConfigErrorKind::FlowRefUnknown {
                    name: name.to_string(),
                },
            );
            return None;
        };
        if self.flow_stack.iter().any(|f| f == name) {
            let mut cycle = self.flow_stack.clone();
            cycle.push(name.to_string());
            diag.error(
                path,
                ConfigErrorKind::FlowRefCycle {
                    chain: cycle.join(" -> "),
                },
            );
            return None;
        }

        let flow_vars = flow.get("variables").and_then(Value::as_object);
        let mut scope = Scope::new(&[self.root_vars, flow_vars], false);
        let mut inner = Chain {
            vars: Vec::new(),
            depth: chain.depth + 1,
        };
        self.flow_stack.push(name.to_string());
        let resolved = match flow.get("config") {
            Some(config) => {
                let config_path = format!("flows.{name}.config");
                self.value(config, &mut scope, &config_path, &mut inner, diag)
            }
            None => Some(ConfigValue::Object(IndexMap::new())),
        };
        self.flow_stack.pop();
        self.flow_cache.insert(name.to_string(), resolved.clone());
        resolved
    }

    fn secret(
        &mut self,
        text: &str,
        name: &str,
        path: &str,
        diag: &mut Diagnostics,
    ) -> Option<ConfigValue> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            diag.error(
                path,
                ConfigErrorKind::InvalidSecretRef {
                    text: text.to_string(),
                },
            );
            return None;
        }
        if self.web {
            diag.error(
                path,
                ConfigErrorKind::SecretInWebFlow {
                    name: name.to_string(),
                },
            );
            return None;
        }
        Some(ConfigValue::Runtime(RuntimeRef::Secret {
            name: name.to_string(),
        }))
    }

    fn store(&mut self, id: &str, path: &str, diag: &mut Diagnostics) -> Option<ConfigValue> {
        if !is_identifier(id) || !self.stores.iter().any(|s| s == id) {
            diag.error(
                path,
                ConfigErrorKind::StoreNotFound {
                    id: id.to_string(),
                    known: self.stores.clone(),
                },
            );
            return None;
        }
        Some(ConfigValue::Store(id.to_string()))
    }

    /// Replaces every `$var.a(.b)` inside `s` by its scalar text.
    fn inline_vars(
        &mut self,
        s: &str,
        scope: &mut Scope<'_>,
        path: &str,
        chain: &mut Chain,
        diag: &mut Diagnostics,
    ) -> Option<Vec<Piece>> {
        let mut pieces = Vec::new();
        let mut rest = s;
        let mut ok = true;
        while let Some(at) = rest.find("$var.") {
            let after = &rest[at + "$var.".len()..];
            let len = dotted_identifier_len(after);
            if len == 0 {
                push_text(&mut pieces, &rest[..at + "$var.".len()]);
                rest = after;
                continue;
            }
            push_text(&mut pieces, &rest[..at]);
            let reference = &after[..len];
            rest = &after[len..];

            match self.var_reference(reference, scope, path, chain, diag) {
                None => ok = false,
                Some(value) => match value {
                    ConfigValue::String(text) => push_text(&mut pieces, &text),
                    ConfigValue::Number(n) => push_text(&mut pieces, &n.to_string()),
                    ConfigValue::Bool(b) => push_text(&mut pieces, &b.to_string()),
                    ConfigValue::Code(js) => push_text(&mut pieces, &format!("{CODE_PREFIX}{js}")),
                    ConfigValue::Store(id) => push_text(&mut pieces, &format!("$store.{id}")),
                    ConfigValue::Runtime(RuntimeRef::Env { name, default }) => {
                        pieces.push(Piece::Env { name, default });
                    }
                    ConfigValue::Runtime(RuntimeRef::Template(parts)) => {
                        for part in parts {
                            match part {
                                TemplatePart::Text(t) => push_text(&mut pieces, &t),
                                TemplatePart::Env { name, default } => {
                                    pieces.push(Piece::Env { name, default });
                                }
                            }
                        }
                    }
                    ConfigValue::Runtime(RuntimeRef::Secret { .. }) => {
                        diag.error(
                            path,
                            ConfigErrorKind::InvalidSecretRef {
                                text: s.to_string(),
                            },
                        );
                        ok = false;
                    }
                    other
                    @ (ConfigValue::Null | ConfigValue::Array(_) | ConfigValue::Object(_)) => {
                        diag.error(
                            path,
                            ConfigErrorKind::VariableNotScalar {
                                reference: reference.to_string(),
                                found: other.type_name(),
                            },
                        );
                        ok = false;
                    }
                },
            }
        }
        push_text(&mut pieces, rest);
        ok.then_some(pieces)
    }

    /// Turns `$env.NAME[:default]` inside the text pieces into run-time reads (or, for web
    /// flows given an environment, into their values).
    fn env_refs(
        &mut self,
        pieces: Vec<Piece>,
        path: &str,
        diag: &mut Diagnostics,
    ) -> Option<ConfigValue> {
        let mut parts: Vec<TemplatePart> = Vec::new();
        let mut ok = true;
        for piece in pieces {
            let scanned = match piece {
                Piece::Text(text) => scan_env(&text),
                Piece::Env { name, default } => vec![TemplatePart::Env { name, default }],
            };
            for part in scanned {
                match part {
                    TemplatePart::Text(t) => push_part_text(&mut parts, &t),
                    TemplatePart::Env { name, default } => {
                        let value = self.env.and_then(|env| env.get(&name));
                        if value.is_none() && default.is_none() && self.env.is_some() {
                            diag.error(
                                path,
                                ConfigErrorKind::MissingEnv {
                                    name: name.clone(),
                                    used_at: path.to_string(),
                                },
                            );
                            ok = false;
                        }
                        // Web flows are baked at build time, like the original.
                        if self.web && self.env.is_some() {
                            let baked = value.cloned().or(default).unwrap_or_default();
                            push_part_text(&mut parts, &baked);
                        } else {
                            parts.push(TemplatePart::Env { name, default });
                        }
                    }
                }
            }
        }
        if !ok {
            return None;
        }
        Some(match parts.len() {
            0 => ConfigValue::String(String::new()),
            1 => match parts.pop() {
                Some(TemplatePart::Text(text)) => ConfigValue::String(text),
                Some(TemplatePart::Env { name, default }) => {
                    ConfigValue::Runtime(RuntimeRef::Env { name, default })
                }
                None => ConfigValue::String(String::new()),
            },
            _ => ConfigValue::Runtime(RuntimeRef::Template(parts)),
        })
    }
}

/// A piece of a string while inline `$var`s are substituted.
enum Piece {
    Text(String),
    Env {
        name: String,
        default: Option<String>,
    },
}

fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Piece::Text(last)) = pieces.last_mut() {
        last.push_str(text);
    } else {
        pieces.push(Piece::Text(text.to_string()));
    }
}

fn push_part_text(parts: &mut Vec<TemplatePart>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(TemplatePart::Text(last)) = parts.last_mut() {
        last.push_str(text);
    } else {
        parts.push(TemplatePart::Text(text.to_string()));
    }
}

/// Splits text at `$env.NAME` / `$env.NAME:default`. As in the original, a default runs to the
/// next whitespace, `"` or `}`, so `"$env.BASE:https://x.io/v1"` has the whole URL as default.
pub(crate) fn scan_env(text: &str) -> Vec<TemplatePart> {
    let mut parts = Vec::new();
    let mut rest = text;
    let mut literal = String::new();
    while let Some(at) = rest.find("$env.") {
        let after = &rest[at + "$env.".len()..];
        let name_len = identifier_len(after);
        if name_len == 0 {
            literal.push_str(&rest[..at + "$env.".len()]);
            rest = after;
            continue;
        }
        literal.push_str(&rest[..at]);
        let name = &after[..name_len];
        let mut tail = &after[name_len..];
        let default = tail.strip_prefix(':').map(|d| {
            let end = d
                .find(|c: char| c == '"' || c == '}' || c.is_whitespace())
                .unwrap_or(d.len());
            tail = &d[end..];
            d[..end].to_string()
        });
        if !literal.is_empty() {
            parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
        }
        parts.push(TemplatePart::Env {
            name: name.to_string(),
            default,
        });
        rest = tail;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(TemplatePart::Text(literal));
    }
    parts
}

/// Checks inline code (without its `$code:` prefix) and reports problems at `path`.
pub(crate) fn check_code(body: &str, path: &str, diag: &mut Diagnostics) -> bool {
    if body.trim().is_empty() {
        diag.error(path, ConfigErrorKind::EmptyCode);
        return false;
    }
    match check_syntax(body) {
        Ok(()) => true,
        Err(reason) => {
            diag.error(path, ConfigErrorKind::InvalidCode { reason });
            false
        }
    }
}

/// Follows `a.b.c` into `value`, as the original `walkPath` does.
fn walk_path(
    value: &ConfigValue,
    sub: &str,
    reference: &str,
    path: &str,
    diag: &mut Diagnostics,
) -> Option<ConfigValue> {
    let mut current = value;
    let segments: Vec<&str> = sub.split('.').collect();
    for (i, segment) in segments.iter().enumerate() {
        let next = match current {
            ConfigValue::Object(map) => map.get(*segment),
            ConfigValue::Array(items) => segment.parse::<usize>().ok().and_then(|n| items.get(n)),
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => {
                diag.error(
                    path,
                    ConfigErrorKind::PathNotFound {
                        reference: reference.to_string(),
                        path: sub.to_string(),
                        segment: segment.to_string(),
                        visited: segments[..i].join("."),
                    },
                );
                return None;
            }
        }
    }
    Some(current.clone())
}

/// Length of the identifier (`[A-Za-z_][A-Za-z0-9_]*`) at the start of `s`, 0 if none.
fn identifier_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    if !bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
    {
        return 0;
    }
    1 + bytes[1..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count()
}

/// Length of `ident(.ident)*` at the start of `s`, 0 if none.
fn dotted_identifier_len(s: &str) -> usize {
    let mut len = identifier_len(s);
    if len == 0 {
        return 0;
    }
    while s[len..].starts_with('.') {
        let next = identifier_len(&s[len + 1..]);
        if next == 0 {
            break;
        }
        len += 1 + next;
    }
    len
}

fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty() && dotted_identifier_len(s) == s.len()
}

/// `$contract.<ident>(.<anything>)`.
fn parse_contract_ref(s: &str) -> Option<(&str, Option<&str>)> {
    let rest = s.strip_prefix("$contract.")?;
    let len = identifier_len(rest);
    match &rest[len..] {
        _ if len == 0 => None,
        "" => Some((rest, None)),
        tail => tail
            .strip_prefix('.')
            .filter(|p| !p.is_empty())
            .map(|p| (&rest[..len], Some(p))),
    }
}

/// `$flow.<ident>(.<[A-Za-z0-9_.]+>)`.
fn parse_flow_ref(s: &str) -> Option<(&str, Option<&str>)> {
    let rest = s.strip_prefix("$flow.")?;
    let len = identifier_len(rest);
    match &rest[len..] {
        _ if len == 0 => None,
        "" => Some((rest, None)),
        tail => tail
            .strip_prefix('.')
            .filter(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            })
            .map(|p| (&rest[..len], Some(p))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    /// Resolves `value` as if it were at `flows.main.x` of `root`.
    fn resolve_in(
        root: &Value,
        value: &Value,
        env: Option<&HashMap<String, String>>,
        web: bool,
    ) -> Result<ConfigValue, Vec<String>> {
        let flows = root["flows"].as_object().unwrap();
        let mut resolver = Resolver::new(
            root.get("variables").and_then(Value::as_object),
            flows,
            "main",
            env,
            web,
            vec!["cache".into()],
        );
        let mut scope = Scope::new(
            &[
                root.get("variables").and_then(Value::as_object),
                flows["main"].get("variables").and_then(Value::as_object),
            ],
            true,
        );
        let mut diag = Diagnostics::new(Path::new("f.json"));
        let out = resolver.resolve(value, &mut scope, "flows.main.x", &mut diag);
        diag.finish()
            .map(|_| out.unwrap_or(ConfigValue::Null))
            .map_err(|e| e.iter().map(|e| e.kind.to_string()).collect())
    }

    fn resolve(value: Value) -> Result<ConfigValue, Vec<String>> {
        let root = json!({
            "variables": {"host": "api.example.com", "port": 8443, "on": true,
                          "obj": {"a": {"b": 1}}, "base": "https://$var.host",
                          "env": "$env.TOKEN", "secret": "$secret.KEY",
                          "cyc1": "$var.cyc2", "cyc2": "$var.cyc3", "cyc3": "$var.cyc1",
                          "missingInside": "$var.nope", "fn": "$code:(e) => e"},
            "flows": {
                "main": {
                    "variables": {"host": "flow.example.com"},
                    "config": {"platform": "server"}
                },
                "server": {"config": {"platform": "server", "url": "$var.base/collect",
                                      "settings": {"region": "eu"}}},
                "loopA": {"config": {"url": "$flow.loopB.url"}},
                "loopB": {"config": {"url": "$flow.loopA.url"}}
            }
        });
        resolve_in(&root, &value, None, false)
    }

    fn plain(value: &ConfigValue) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn whole_string_var_keeps_json_type_and_flow_overrides_root() {
        let out =
            resolve(json!({"p": "$var.port", "o": "$var.obj.a", "h": "$var.host", "b": "$var.on"}))
                .unwrap();
        assert_eq!(
            plain(&out),
            json!({"p": 8443, "o": {"b": 1}, "h": "flow.example.com", "b": true})
        );
    }

    #[test]
    fn inline_var_is_substituted_recursively() {
        let out = resolve(json!("$var.base:$var.port/v1")).unwrap();
        assert_eq!(
            out,
            ConfigValue::String("https://flow.example.com:8443/v1".into())
        );
    }

    #[test]
    fn cycles_report_the_chain() {
        let errors = resolve(json!("$var.cyc1")).unwrap_err();
        assert_eq!(
            errors,
            ["Cyclic $var reference: cyc1 -> cyc2 -> cyc3 -> cyc1"]
        );
    }

    #[test]
    fn missing_and_non_scalar_vars_are_errors() {
        let errors = resolve(json!("x-$var.obj-y")).unwrap_err();
        assert!(errors[0].starts_with("Variable \"obj\" resolves to non-scalar (object)"));
        let errors = resolve(json!("$var.missingInside")).unwrap_err();
        assert!(
            errors[0]
                .starts_with("Variable \"nope\" not found (referenced from $var.missingInside)"),
            "{errors:?}"
        );
        let errors = resolve(json!("$var.obj.a.zzz")).unwrap_err();
        assert!(errors[0].starts_with("Path \"a.zzz\" not found in \"$var.obj\": \"zzz\""));
    }

    #[test]
    fn env_becomes_a_runtime_read_with_or_without_default() {
        assert_eq!(
            resolve(json!("$env.URL:https://x.io/v1/events")).unwrap(),
            ConfigValue::Runtime(RuntimeRef::Env {
                name: "URL".into(),
                default: Some("https://x.io/v1/events".into())
            })
        );
        assert_eq!(
            resolve(json!("Bearer $var.env")).unwrap(),
            ConfigValue::Runtime(RuntimeRef::Template(vec![
                TemplatePart::Text("Bearer ".into()),
                TemplatePart::Env {
                    name: "TOKEN".into(),
                    default: None
                },
            ]))
        );
        // `$env.` without a name stays text.
        assert_eq!(
            resolve(json!("$env.")).unwrap(),
            ConfigValue::String("$env.".into())
        );
    }

    #[test]
    fn env_is_checked_against_a_given_environment() {
        let root = json!({"flows": {"main": {}}});
        let env = HashMap::from([("SET".to_string(), "v".to_string())]);
        let errors = resolve_in(
            &root,
            &json!(["$env.SET", "$env.MISSING", "$env.D:x"]),
            Some(&env),
            false,
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "missing environment variable MISSING (used at flows.main.x.1); set it or give a \
              default with $env.MISSING:default"
            ]
        );
        let baked = resolve_in(&root, &json!("a-$env.SET-$env.D:dflt"), Some(&env), true).unwrap();
        assert_eq!(baked, ConfigValue::String("a-v-dflt".into()));
    }

    #[test]
    fn secrets_are_whole_string_server_only() {
        assert_eq!(
            resolve(json!("$var.secret")).unwrap(),
            ConfigValue::Runtime(RuntimeRef::Secret { name: "KEY".into() })
        );
        for bad in ["Bearer $secret.KEY", "$secret.lower", "Bearer $var.secret"] {
            let errors = resolve(json!(bad)).unwrap_err();
            assert!(
                errors[0].contains("is not a usable secret reference"),
                "{bad}: {errors:?}"
            );
        }
        let root = json!({"flows": {"main": {}}});
        let errors = resolve_in(&root, &json!("$secret.KEY"), None, true).unwrap_err();
        assert!(errors[0].contains("cannot be used in a web flow"));
    }

    #[test]
    fn flow_refs_read_sibling_config_and_detect_cycles() {
        let out = resolve(json!(["$flow.server.url", "$flow.server.settings.region"])).unwrap();
        assert_eq!(
            plain(&out),
            json!(["https://api.example.com/collect", "eu"])
        );
        let errors = resolve(json!("$flow.loopA.url")).unwrap_err();
        assert_eq!(
            errors,
            ["Cyclic $flow reference: main -> loopA -> loopB -> loopA"]
        );
        let errors = resolve(json!("$flow.main.url")).unwrap_err();
        assert_eq!(errors, ["Cyclic $flow reference: main -> main"]);
        let errors = resolve(json!("$flow.nope.url")).unwrap_err();
        assert!(errors[0].contains("flow \"nope\" does not exist"));
    }

    #[test]
    fn code_and_store_become_their_own_nodes() {
        assert_eq!(
            resolve(json!("$var.fn")).unwrap(),
            ConfigValue::Code("(e) => e".into())
        );
        assert_eq!(
            resolve(json!("$store.cache")).unwrap(),
            ConfigValue::Store("cache".into())
        );
        assert!(resolve(json!("$store.nope")).is_err());
        let errors = resolve(json!("$code:(e) => {")).unwrap_err();
        assert!(errors[0].starts_with("inline JavaScript does not parse"));
        let errors = resolve(json!("$code:  ")).unwrap_err();
        assert!(errors[0].starts_with("inline code is empty"));
    }

    #[test]
    fn contracts_are_read_by_path() {
        let root = json!({"flows": {"main": {}}});
        let flows = root["flows"].as_object().unwrap();
        let mut resolver = Resolver::new(None, flows, "main", None, false, vec![]);
        let ConfigValue::Object(contracts) = ConfigValue::from_json(
            &json!({"web": {"events": {"page": {"view": {"type": "object"}}}}}),
        ) else {
            unreachable!()
        };
        resolver.set_contracts(contracts);
        let mut scope = Scope::new(&[], true);
        let mut diag = Diagnostics::new(Path::new("f.json"));
        let out = resolver.resolve(
            &json!("$contract.web.events.page"),
            &mut scope,
            "x",
            &mut diag,
        );
        assert_eq!(plain(&out.unwrap()), json!({"view": {"type": "object"}}));
        resolver.resolve(&json!("$contract.app"), &mut scope, "y", &mut diag);
        assert!(
            diag.finish()
                .unwrap_err()
                .to_string()
                .contains("available contracts: web")
        );
    }

    fn fan_out(levels: usize, leaf: Value) -> Value {
        let mut vars = serde_json::Map::new();
        for i in 0..levels {
            let next = format!("$var.v{}", i + 1);
            vars.insert(format!("v{i}"), json!([next, next]));
        }
        vars.insert(format!("v{levels}"), leaf);
        json!({"variables": vars, "flows": {"main": {}}})
    }

    #[test]
    fn variables_used_many_times_over_are_resolved_once_each() {
        let root = fan_out(10, json!(1));
        let out = resolve_in(&root, &json!("$var.v0"), None, false).unwrap();
        assert_eq!(
            serde_json::to_string(&out).unwrap().matches('1').count(),
            1024
        );
    }

    #[test]
    fn exponential_expansion_is_refused_not_attempted() {
        let root = fan_out(60, json!(1));
        let errors = resolve_in(&root, &json!("$var.v0"), None, false).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("expand the config to more than"),
            "{errors:?}"
        );

        let mut vars = serde_json::Map::new();
        for i in 0..60 {
            vars.insert(format!("s{i}"), json!(format!("$var.s{0}$var.s{0}", i + 1)));
        }
        vars.insert("s60".into(), json!("abcdefgh"));
        let root = json!({"variables": vars, "flows": {"main": {}}});
        assert!(resolve_in(&root, &json!("$var.s0"), None, false).is_err());
    }

    #[test]
    fn long_variable_chains_stop_at_the_depth_limit() {
        let mut vars = serde_json::Map::new();
        for i in 0..5000 {
            vars.insert(format!("v{i}"), json!(format!("$var.v{}", i + 1)));
        }
        vars.insert("v5000".into(), json!(1));
        let root = json!({"variables": vars, "flows": {"main": {}}});
        let errors = resolve_in(&root, &json!("$var.v0"), None, false).unwrap_err();
        assert!(errors[0].contains("nested more than"), "{errors:?}");
    }
}
