//! Writing resolved config values as JavaScript: plain JSON as literals, and the nodes JSON
//! cannot hold as code, the way the original bundler emits them: `$code:` as the expression it
//! is, `$env.NAME:default` as `process.env["NAME"] ?? "default"`, text with `$env` inside as a
//! template literal, `$secret.NAME` as a guarded read, `$store.id` as the store instance.
//!
//! The writer remembers on which lines each piece of inline code landed, so that esbuild's
//! complaint about a line of the generated entry can be reported at the config's JSON path.

use crate::config::{ConfigValue, RuntimeRef, TemplatePart};

/// Name of the entry's helper that throws when a `$secret` is missing; the message is the
/// original's, so operators recognise it.
pub const SECRET_GUARD: &str = "__flowhostRequireSecret";

/// Where one piece of inline code sits in the generated source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSpan {
    /// First line (1-based) holding the code.
    pub first_line: usize,
    /// Last line holding the code.
    pub last_line: usize,
    /// The config's JSON path of the `$code:` value.
    pub json_path: String,
}

/// Accumulates generated JavaScript and the spans of inline code in it.
#[derive(Debug, Default)]
pub struct JsWriter {
    out: String,
    /// Lines completed so far; the current line is `line + 1`.
    line: usize,
    spans: Vec<CodeSpan>,
}

impl JsWriter {
    /// An empty writer.
    pub fn new() -> JsWriter {
        JsWriter::default()
    }

    /// Appends raw text.
    pub fn push(&mut self, text: &str) {
        self.line += text.bytes().filter(|&b| b == b'\n').count();
        self.out.push_str(text);
    }

    /// Appends a line of raw text at `indent` levels of two spaces.
    pub fn line(&mut self, indent: usize, text: &str) {
        self.push(&"  ".repeat(indent));
        self.push(text);
        self.push("\n");
    }

    /// Appends inline code as a parenthesised expression on lines of its own, so that a
    /// trailing `//` comment in it cannot swallow what follows, and records its span.
    pub fn code(&mut self, source: &str, json_path: &str) {
        self.push("(\n");
        let first_line = self.line + 1;
        self.push(source);
        let last_line = self.line + 1;
        self.push("\n)");
        self.spans.push(CodeSpan {
            first_line,
            last_line,
            json_path: json_path.to_string(),
        });
    }

    /// Appends `value` as a JavaScript expression; `json_path` names it for code spans, and
    /// `indent` is the nesting level of the line it starts on.
    pub fn value(&mut self, value: &ConfigValue, json_path: &str, indent: usize) {
        match value {
            ConfigValue::Null => self.push("null"),
            ConfigValue::Bool(b) => self.push(if *b { "true" } else { "false" }),
            ConfigValue::Number(n) => self.push(&n.to_string()),
            ConfigValue::String(s) => self.push(&string_literal(s)),
            ConfigValue::Array(items) if items.is_empty() => self.push("[]"),
            ConfigValue::Array(items) => {
                self.push("[\n");
                for (i, item) in items.iter().enumerate() {
                    self.push(&"  ".repeat(indent + 1));
                    self.value(item, &child(json_path, &i.to_string()), indent + 1);
                    self.push(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                self.push(&"  ".repeat(indent));
                self.push("]");
            }
            ConfigValue::Object(map) if map.is_empty() => self.push("{}"),
            ConfigValue::Object(map) => {
                self.push("{\n");
                for (i, (key, item)) in map.iter().enumerate() {
                    self.push(&"  ".repeat(indent + 1));
                    self.push(&property_key(key));
                    self.push(": ");
                    self.value(item, &child(json_path, key), indent + 1);
                    self.push(if i + 1 < map.len() { ",\n" } else { "\n" });
                }
                self.push(&"  ".repeat(indent));
                self.push("}");
            }
            ConfigValue::Code(source) => self.code(source, json_path),
            ConfigValue::Store(id) => self.push(&format!("stores[{}]", string_literal(id))),
            ConfigValue::Runtime(runtime) => self.push(&runtime_expression(runtime)),
        }
    }

    /// The current line number (1-based).
    pub fn current_line(&self) -> usize {
        self.line + 1
    }

    /// The source and the code spans.
    pub fn finish(self) -> (String, Vec<CodeSpan>) {
        (self.out, self.spans)
    }
}

/// Extends a JSON path by one key, as config errors write paths.
pub fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A double-quoted JavaScript string literal. JSON's escaping is valid JavaScript (U+2028 and
/// U+2029 are allowed in string literals since ES2019).
pub fn string_literal(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// An object literal key. `__proto__` is written computed: as a plain key it would set the
/// object's prototype instead of creating a property, unlike `JSON.parse`.
fn property_key(key: &str) -> String {
    if key == "__proto__" {
        format!("[{}]", string_literal(key))
    } else {
        string_literal(key)
    }
}

/// The expression reading a run-time value from the flow's `process.env`.
fn runtime_expression(runtime: &RuntimeRef) -> String {
    match runtime {
        RuntimeRef::Env { name, default } => env_read(name, default.as_deref()),
        RuntimeRef::Secret { name } => {
            let name = string_literal(name);
            format!("{SECRET_GUARD}({name}, process.env[{name}])")
        }
        RuntimeRef::Template(parts) => {
            let mut out = String::from("`");
            for part in parts {
                match part {
                    TemplatePart::Text(text) => out.push_str(&template_text(text)),
                    TemplatePart::Env { name, default } => {
                        out.push_str("${");
                        out.push_str(&env_read(name, default.as_deref()));
                        out.push('}');
                    }
                }
            }
            out.push('`');
            out
        }
    }
}

fn env_read(name: &str, default: Option<&str>) -> String {
    let name = string_literal(name);
    match default {
        Some(default) => format!("(process.env[{name}] ?? {})", string_literal(default)),
        None => format!("process.env[{name}]"),
    }
}

/// Literal text inside a template literal: backslash, backtick and `${` escaped, so the text
/// stays text.
fn template_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '`' => out.push_str("\\`"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
    }
    out
}

/// The helper every entry carries for `$secret` reads; it treats missing and empty alike and
/// never echoes the value.
pub fn secret_guard_source() -> String {
    format!(
        "function {SECRET_GUARD}(name, value) {{\n  if (value == null || value === \"\") {{\n    \
         throw new Error('WalkerOS: required secret \"' + name + '\" is not set');\n  }}\n  \
         return value;\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn js(value: &ConfigValue) -> String {
        let mut writer = JsWriter::new();
        writer.value(value, "x", 0);
        writer.finish().0
    }

    #[test]
    fn plain_json_is_written_as_literals() {
        let value = ConfigValue::from_json(&json!({"a": [1, 2.5, "t\"x"], "b": null, "c": {}}));
        let out = js(&value);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, json!({"a": [1, 2.5, "t\"x"], "b": null, "c": {}}));
    }

    #[test]
    fn runtime_values_become_process_env_reads() {
        let env = ConfigValue::Runtime(RuntimeRef::Env {
            name: "SINK_URL".into(),
            default: Some("http://127.0.0.1:9901/sink".into()),
        });
        assert_eq!(
            js(&env),
            r#"(process.env["SINK_URL"] ?? "http://127.0.0.1:9901/sink")"#
        );
        let bare = ConfigValue::Runtime(RuntimeRef::Env {
            name: "A".into(),
            default: None,
        });
        assert_eq!(js(&bare), r#"process.env["A"]"#);
        let secret = ConfigValue::Runtime(RuntimeRef::Secret { name: "KEY".into() });
        assert_eq!(
            js(&secret),
            r#"__flowhostRequireSecret("KEY", process.env["KEY"])"#
        );
    }

    #[test]
    fn templates_escape_their_text() {
        let template = ConfigValue::Runtime(RuntimeRef::Template(vec![
            TemplatePart::Text("Price `is` ${5} \\ ".into()),
            TemplatePart::Env {
                name: "T".into(),
                default: Some("x".into()),
            },
        ]));
        assert_eq!(
            js(&template),
            r#"`Price \`is\` \${5} \\ ${(process.env["T"] ?? "x")}`"#
        );
    }

    #[test]
    fn proto_keys_stay_own_properties() {
        let value = ConfigValue::from_json(&json!({"__proto__": {"polluted": true}}));
        assert!(js(&value).contains(r#"["__proto__"]: {"#));
    }

    #[test]
    fn inline_code_is_parenthesised_and_its_lines_recorded() {
        let mut writer = JsWriter::new();
        writer.push("const a = {\n  fn: ");
        writer.value(
            &ConfigValue::Code("(e) => e // trailing comment".into()),
            "flows.f.destinations.d.config.fn",
            1,
        );
        writer.push("\n};\n");
        let (source, spans) = writer.finish();
        assert_eq!(
            source,
            "const a = {\n  fn: (\n(e) => e // trailing comment\n)\n};\n"
        );
        assert_eq!(
            spans,
            vec![CodeSpan {
                first_line: 3,
                last_line: 3,
                json_path: "flows.f.destinations.d.config.fn".into()
            }]
        );
    }

    #[test]
    fn store_references_name_the_store_instance() {
        assert_eq!(
            js(&ConfigValue::Store("cache".into())),
            r#"stores["cache"]"#
        );
    }
}
