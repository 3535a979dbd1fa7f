//! The guest's Node modules: plain JavaScript files under `guest-shim/js/node/` that stand in
//! for Node's built-in modules (`http`, `crypto`, `buffer`, ...) inside the sandbox, embedded
//! into the binary by `host/build.rs`.
//!
//! The bundler writes them into a directory once per set of contents and points esbuild at
//! them with `--alias:<name>=` and `--alias:node:<name>=`, so a package that imports `http` or
//! `node:http` gets the guest's module. A built-in without a file here is not aliased; the
//! bundle then fails, and [`is_node_builtin`] lets the bundler say which module was missing
//! instead of passing esbuild's "Could not resolve" on. This module does not implement any
//! of the modules.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

include!(concat!(env!("OUT_DIR"), "/guest_node_modules.rs"));

/// Node's built-in module names without the `node:` prefix (Node 20's `builtinModules`, minus
/// the deprecated `_` internals).
const NODE_BUILTINS: &[&str] = &[
    "assert",
    "assert/strict",
    "async_hooks",
    "buffer",
    "child_process",
    "cluster",
    "console",
    "constants",
    "crypto",
    "dgram",
    "diagnostics_channel",
    "dns",
    "dns/promises",
    "domain",
    "events",
    "fs",
    "fs/promises",
    "http",
    "http2",
    "https",
    "inspector",
    "inspector/promises",
    "module",
    "net",
    "os",
    "path",
    "path/posix",
    "path/win32",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "readline/promises",
    "repl",
    "stream",
    "stream/consumers",
    "stream/promises",
    "stream/web",
    "string_decoder",
    "sys",
    "timers",
    "timers/promises",
    "tls",
    "trace_events",
    "tty",
    "url",
    "util",
    "util/types",
    "v8",
    "vm",
    "wasi",
    "worker_threads",
    "zlib",
];

/// Node's globals that are modules' exports, made available to bundled code through esbuild's
/// `--inject` when the guest has the module: (global, module, export).
const INJECTED_GLOBALS: &[(&str, &str, &str)] = &[("Buffer", "buffer", "Buffer")];

/// True when `specifier` names a Node built-in module, with or without `node:`.
pub fn is_node_builtin(specifier: &str) -> bool {
    let name = specifier.strip_prefix("node:").unwrap_or(specifier);
    NODE_BUILTINS.contains(&name) || specifier.starts_with("node:")
}

/// The embedded modules: (path relative to `guest-shim/js/node/`, source).
pub fn files() -> &'static [(&'static str, &'static str)] {
    GUEST_NODE_MODULES
}

/// The built-ins the guest provides, by name (`http`, `stream/promises`), with their file.
pub fn provided() -> impl Iterator<Item = (&'static str, &'static str)> {
    GUEST_NODE_MODULES.iter().filter_map(|(path, _)| {
        let name = path.strip_suffix(".js")?;
        let name = name.strip_suffix("/index").unwrap_or(name);
        NODE_BUILTINS.contains(&name).then_some((name, *path))
    })
}

/// Digest of every embedded file (names and contents); part of the bundle cache key, since a
/// changed module changes every bundle that uses it.
pub fn digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        let mut hasher = Sha256::new();
        for (path, source) in GUEST_NODE_MODULES {
            hasher.update(path.as_bytes());
            hasher.update(b"\0");
            hasher.update((source.len() as u64).to_le_bytes());
            hasher.update(source.as_bytes());
        }
        hasher.update(MODULES_MANIFEST.as_bytes());
        hex::encode(&hasher.finalize()[..16])
    })
}

/// The file that injects Node's globals, relative to the modules' directory. It sits in a
/// package of its own marked `"sideEffects": false`, so esbuild includes it (and the modules it
/// re-exports) only in bundles that use one of the globals.
const INJECT_FILE: &str = "flowhost-inject/index.js";

/// The package manifest next to [`INJECT_FILE`].
const INJECT_MANIFEST: &str =
    "{\"name\":\"flowhost-inject\",\"private\":true,\"sideEffects\":false}\n";

/// The package manifest at the top of the modules' directory. It has no `"type"`: a
/// `package.json` with `"type": "module"` further up (a project that holds the cache directory)
/// would otherwise make esbuild read `events.js` and `assert.js`, which are CommonJS so that
/// `require('events')` is the EventEmitter itself, as ES modules without exports.
const MODULES_MANIFEST: &str = "{\"name\":\"flowhost-guest-node\",\"private\":true}\n";

/// Writes the modules (and the inject file) into `<parent>/guest-node-<digest>/` unless a
/// previous build did, and returns that directory. The directory appears by one rename, so a
/// concurrent build sees it whole or not at all.
pub fn write_to(parent: &Path) -> std::io::Result<PathBuf> {
    let dir = parent.join(format!("guest-node-{}", digest()));
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(parent)?;
    // Unique per process and call, so concurrent builds never share a staging directory.
    static STAGING: AtomicU64 = AtomicU64::new(0);
    let staged = parent.join(format!(
        ".guest-node-{}.{}-{}.tmp",
        digest(),
        std::process::id(),
        STAGING.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&staged);
    std::fs::create_dir_all(&staged)?;
    std::fs::write(staged.join("package.json"), MODULES_MANIFEST)?;
    for (path, source) in GUEST_NODE_MODULES {
        let target = staged.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, source)?;
    }
    let inject = staged.join(INJECT_FILE);
    if let Some(parent) = inject.parent() {
        std::fs::create_dir_all(parent)?;
        std::fs::write(parent.join("package.json"), INJECT_MANIFEST)?;
    }
    std::fs::write(inject, inject_source())?;
    match std::fs::rename(&staged, &dir) {
        Ok(()) => Ok(dir),
        // Another build won the race; its directory has the same contents.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&staged);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            Err(e)
        }
    }
}

/// The inject module: re-exports the globals whose module the guest has.
fn inject_source() -> String {
    let mut source = String::from("// Node globals for bundled code; generated by flowhost.\n");
    for (global, module, export) in INJECTED_GLOBALS {
        if let Some((_, file)) = provided().find(|(name, _)| name == module) {
            source.push_str(&format!(
                "export {{ {export} as {global} }} from '../{file}';\n"
            ));
        }
    }
    source
}

/// esbuild arguments that route every provided built-in to its file in `dir` (as written by
/// [`write_to`]) and inject Node's globals.
pub fn esbuild_args(dir: &Path) -> Vec<String> {
    let mut args = Vec::new();
    for (name, file) in provided() {
        let path = dir.join(file);
        args.push(format!("--alias:{name}={}", path.display()));
        args.push(format!("--alias:node:{name}={}", path.display()));
    }
    if INJECTED_GLOBALS
        .iter()
        .any(|(_, module, _)| provided().any(|(name, _)| name == *module))
    {
        args.push(format!("--inject:{}", dir.join(INJECT_FILE).display()));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_recognised_with_and_without_prefix() {
        for name in ["http", "node:http", "stream/promises", "node:sqlite", "fs"] {
            assert!(is_node_builtin(name), "{name}");
        }
        for name in ["express", "@walkeros/core", "https-proxy-agent", "./http"] {
            assert!(!is_node_builtin(name), "{name}");
        }
    }

    #[test]
    fn every_provided_module_gets_both_aliases() {
        let dir = Path::new("/guest");
        let args = esbuild_args(dir);
        for (name, file) in provided() {
            let path = dir.join(file).display().to_string();
            assert!(args.contains(&format!("--alias:{name}={path}")));
            assert!(args.contains(&format!("--alias:node:{name}={path}")));
        }
        // `Buffer` is injected exactly when the guest has the buffer module.
        let injects = args.iter().any(|a| a.starts_with("--inject:"));
        assert_eq!(injects, provided().any(|(name, _)| name == "buffer"));
    }

    #[test]
    fn modules_are_written_once_per_content() {
        let parent = std::env::temp_dir().join(format!("flowhost-guest-{}", std::process::id()));
        let first = write_to(&parent).unwrap();
        let second = write_to(&parent).unwrap();
        assert_eq!(first, second);
        for (path, source) in files() {
            assert_eq!(std::fs::read_to_string(first.join(path)).unwrap(), *source);
        }
        assert!(first.join(INJECT_FILE).is_file());
        assert_eq!(
            std::fs::read_to_string(first.join("package.json")).unwrap(),
            MODULES_MANIFEST
        );
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
