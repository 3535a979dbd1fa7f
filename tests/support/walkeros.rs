//! Real walkerOS packages for the tests and benches that run a flow in flowhost and in Node: an
//! npm work directory with the packages and esbuild, the entry module of a flow config, bundles
//! built with the guest's Node modules, and a Node runner for the same entry.
//!
//! The entry is generated here rather than by flowhost's bundler so that Node can run the very
//! same module (with its own built-ins): `$code:` strings become code and `$env.NAME` becomes a
//! `process.env` read. The bundle for flowhost is made with the bundler's esbuild arguments and
//! guest modules.
//!
//! Everything here needs Node and npm; [`node_missing`] says why a test should skip.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The npm packages of the work directory, at the versions the comparison is about.
pub const PACKAGES: &[&str] = &[
    "@walkeros/collector@4.2.1",
    "@walkeros/server-destination-api@4.2.1",
    "esbuild@0.28.2",
];

/// Why Node-based tests cannot run here, or `None` when `node` and `npm` both work.
pub fn node_missing() -> Option<String> {
    for tool in ["node", "npm"] {
        let works = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !works {
            return Some(format!(
                "`{tool}` is not installed; .ci/setup installs Node and npm"
            ));
        }
    }
    None
}

/// The npm work directory with [`PACKAGES`] installed, under `CARGO_TARGET_TMPDIR`; installed
/// on first use (needs the npm registry once), then reused. It appears by one rename, so
/// concurrent test binaries see it whole or not at all.
pub fn workdir() -> Result<PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(install).clone()
}

fn install() -> Result<PathBuf, String> {
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = parent.join("walkeros-4.2.1");
    if dir.join("node_modules/.bin/esbuild").exists() {
        return Ok(dir);
    }
    let staged = parent.join(format!("walkeros-4.2.1.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&staged);
    std::fs::create_dir_all(&staged).map_err(|e| format!("cannot create {staged:?}: {e}"))?;
    std::fs::write(
        staged.join("package.json"),
        r#"{"name":"flowhost-walkeros-tests","private":true,"type":"module"}"#,
    )
    .map_err(|e| e.to_string())?;
    let output = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .args(PACKAGES)
        .current_dir(&staged)
        .output()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "npm install {} failed: {}",
            PACKAGES.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    match std::fs::rename(&staged, &dir) {
        Ok(()) => Ok(dir),
        Err(_) if dir.join("node_modules/.bin/esbuild").exists() => {
            let _ = std::fs::remove_dir_all(&staged);
            Ok(dir)
        }
        Err(e) => Err(format!("cannot move {staged:?} to {dir:?}: {e}")),
    }
}

/// Bundles `entry` (a module inside the work directory) into `out` for flowhost, with the
/// arguments and guest modules flowhost's own bundler uses: one ES module with Node's built-ins
/// replaced by `guest-shim/js/node/` and `Buffer` injected.
pub fn bundle(workdir: &Path, entry: &Path, out: &Path) -> Result<(), String> {
    use flowhost::build::{esbuild, guest_modules};

    let modules = guest_modules::write_to(&workdir.join("guest-modules"))
        .map_err(|e| format!("cannot write the guest's Node modules: {e}"))?;
    let output = Command::new(workdir.join("node_modules/.bin/esbuild"))
        .args(esbuild::BASE_ARGS)
        .args(guest_modules::esbuild_args(&modules))
        .arg(format!("--outfile={}", out.display()))
        .arg(entry)
        .current_dir(workdir)
        .output()
        .map_err(|e| format!("cannot run esbuild: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "esbuild failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// JavaScript for a flow-config value: `$code:` strings become their code, `$env.NAME` and
/// `$env.NAME:default` become `process.env` reads, everything else a literal.
pub fn js_value(value: &Value) -> String {
    match value {
        Value::String(s) => {
            if let Some(code) = s.strip_prefix("$code:") {
                return format!("({code})");
            }
            if let Some(reference) = s.strip_prefix("$env.") {
                let (name, default) = match reference.split_once(':') {
                    Some((name, default)) => (name, Some(default)),
                    None => (reference, None),
                };
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    let name = serde_json::to_string(name).unwrap();
                    return match default {
                        Some(default) => format!(
                            "(process.env[{name}] ?? {})",
                            serde_json::to_string(default).unwrap()
                        ),
                        None => format!("process.env[{name}]"),
                    };
                }
            }
            serde_json::to_string(s).unwrap()
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(js_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", serde_json::to_string(k).unwrap(), js_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// The entry module of flow `flow` in `config` (a version-4 flow config): imports of its
/// packages, `startFlow` with its collector settings and destinations, then `harness`, which
/// sees `collector` and `elb`.
pub fn entry_source(config: &Value, flow: &str, harness: &str) -> String {
    let flow = &config["flows"][flow];
    let mut imports = vec!["import { startFlow } from '@walkeros/collector';".to_string()];
    let mut destinations = Vec::new();
    if let Some(steps) = flow["destinations"].as_object() {
        for (id, step) in steps {
            let code = if let Some(package) = step["package"].as_str() {
                let local = format!("__destination_{id}");
                match step["import"].as_str() {
                    Some(name) => {
                        imports.push(format!("import {{ {name} as {local} }} from '{package}';"))
                    }
                    None => imports.push(format!("import {local} from '{package}';")),
                }
                local
            } else {
                js_value(&step["code"])
            };
            let config = if step["config"].is_null() {
                "{}".to_string()
            } else {
                js_value(&step["config"])
            };
            destinations.push(format!(
                "{}: {{ code: {code}, config: {config} }}",
                serde_json::to_string(id).unwrap()
            ));
        }
    }
    let collector = if flow["collector"].is_null() {
        "{}".to_string()
    } else {
        js_value(&flow["collector"])
    };
    format!(
        "{imports}\n\nconst {{ collector, elb }} = await startFlow({{ ...{collector}, destinations: {{ {destinations} }} }});\n\n{harness}\n",
        imports = imports.join("\n"),
        destinations = destinations.join(", "),
    )
}

/// A Node script that imports the entry given as its first argument and calls its `push` export
/// with each JSON line of stdin as `flowhost exec` does: one call per line, the next once the
/// microtasks of the previous have run, results printed in input order.
pub const NODE_RUNNER: &str = r#"
import { readFileSync, writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const flow = await import(pathToFileURL(process.argv[2]).href);
const lines = readFileSync(0, 'utf8').split('\n').filter((line) => line.trim() !== '');
const results = [];
for (const line of lines) {
  results.push(
    Promise.resolve()
      .then(() => flow.push(JSON.parse(line)))
      .then((result) => ({ ok: true, result: result === undefined ? null : result }), (err) => ({ ok: false, error: String(err?.message ?? err) })),
  );
  await new Promise((resolve) => setImmediate(resolve));
}
// Results leave as the guest's do: errors as {name, message}, a cycle as "[Circular]".
function json(value) {
  const ancestors = [];
  return JSON.stringify(value, function (key, item) {
    if (key !== '' || ancestors.length > 0) ancestors.length = ancestors.lastIndexOf(this) + 1;
    if (typeof item !== 'object' || item === null) return item;
    if (ancestors.includes(item)) return '[Circular]';
    const out = item instanceof Error ? { name: item.name, message: item.message } : item;
    ancestors.push(out);
    return out;
  });
}
// Written synchronously: process.exit would cut off a pending asynchronous write to a pipe.
writeSync(1, (await Promise.all(results)).map((result) => json(result) + '\n').join(''));
process.exit(0);
"#;

/// Runs `entry` under Node with `stdin` as the events and `env` set; returns stdout.
pub async fn run_in_node(
    workdir: &Path,
    entry: &Path,
    stdin: &str,
    env: &[(&str, &str)],
) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let runner = workdir.join("flowhost-node-runner.mjs");
    std::fs::write(&runner, NODE_RUNNER).map_err(|e| e.to_string())?;
    let mut command = tokio::process::Command::new("node");
    command
        .arg(&runner)
        .arg(entry)
        .current_dir(workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run node: {e}"))?;
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    let writer = tokio::spawn(async move {
        let _ = input.write_all(stdin.as_bytes()).await;
    });
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("node: {e}"))?;
    let _ = writer.await;
    if !output.status.success() {
        return Err(format!(
            "node failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Where `a` and `b` first differ, with a little context, for assertion messages that must not
/// print whole 64 KiB events.
pub fn first_difference(a: &str, b: &str) -> Option<String> {
    if a == b {
        return None;
    }
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or(a.len().min(b.len()));
    let window = |s: &str| -> String {
        let start = s.floor_char_boundary(at.saturating_sub(80));
        let end = s.ceil_char_boundary((at + 80).min(s.len()));
        s[start..end].to_string()
    };
    Some(format!(
        "differ at byte {at} (lengths {} and {}):\n  {}\n  {}",
        a.len(),
        b.len(),
        window(a),
        window(b)
    ))
}

/// `text` with the values that differ between any two runs replaced by their shape: span ids
/// (`"id":"<16 hex>"`), trace ids (`"trace":"<32 hex>"`) and the numbers of `timestamp`,
/// `timing` and `ts`. Works on the JSON text, so everything else stays byte for byte.
pub fn normalize_volatile(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(at) = rest.find('"') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let is_key_position = out.ends_with('{') || out.ends_with(',');
        if is_key_position {
            for (key, hex_len) in [("\"id\":\"", 16), ("\"trace\":\"", 32)] {
                if let Some(value) = rest.strip_prefix(key) {
                    let hex: String = value
                        .chars()
                        .take_while(|c| c.is_ascii_hexdigit())
                        .collect();
                    if hex.len() == hex_len && value[hex_len..].starts_with('"') {
                        out.push_str(key);
                        out.push_str(&format!("<hex{hex_len}>\""));
                        rest = &value[hex_len + 1..];
                        continue 'scan;
                    }
                }
            }
            for key in ["\"timestamp\":", "\"timing\":", "\"ts\":"] {
                if let Some(value) = rest.strip_prefix(key) {
                    let number: String = value
                        .chars()
                        .take_while(|c| {
                            c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | 'E' | '+')
                        })
                        .collect();
                    if !number.is_empty() {
                        out.push_str(key);
                        out.push_str("<number>");
                        rest = &value[number.len()..];
                        continue 'scan;
                    }
                }
            }
        }
        // An ordinary string: copy it whole, escapes included.
        let bytes = rest.as_bytes();
        let mut end = 1;
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        let end = (end + 1).min(rest.len());
        out.push_str(&rest[..end]);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A sink on 127.0.0.1 that keeps every request to `/collect` as one line,
/// `<x-flow> <content-type>\n<body>`, and can answer late.
pub struct RecordingSink {
    /// `http://127.0.0.1:<port>/collect`.
    pub url: String,
    /// The requests, in arrival order.
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The most requests that were being answered at once.
    pub max_in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Starts a [`RecordingSink`] that answers `{"ok":true}` after `delay`.
pub async fn start_recording_sink(delay: std::time::Duration) -> RecordingSink {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let requests = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (log, now, max) = (requests.clone(), in_flight.clone(), max_in_flight.clone());
    let app = axum::Router::new().route(
        "/collect",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (log, now, max) = (log.clone(), now.clone(), max.clone());
            async move {
                let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(current, Ordering::SeqCst);
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                log.lock().unwrap().push(format!(
                    "{} {}\n{body}",
                    header("x-flow"),
                    header("content-type")
                ));
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                now.fetch_sub(1, Ordering::SeqCst);
                ([("content-type", "application/json")], "{\"ok\":true}")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/collect", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    RecordingSink {
        url,
        requests,
        max_in_flight,
    }
}
