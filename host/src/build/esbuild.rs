//! esbuild as a subprocess: finding the binary, running it on an entry and reading its
//! messages.
//!
//! The binary is, in this order: the file named by `FLOWHOST_ESBUILD`; the platform package of
//! esbuild [`ESBUILD_VERSION`] (`@esbuild/linux-x64` and friends, a static Go executable)
//! fetched and verified by the npm client into the package store; or `esbuild` on `PATH`. The
//! entry is fed on stdin and the bundle read from stdout, so nothing but the modules esbuild
//! resolves touches the disk. esbuild's CLI has no machine-readable messages; its text output
//! (without colour) is parsed into [`Message`]s, which is stable enough for the few fields
//! read here and falls back to the raw text otherwise.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::npm::{self, Request, ResolveOptions, Resolver};

/// The esbuild release flowhost bundles with.
pub const ESBUILD_VERSION: &str = "0.28.2";

/// Environment variable naming an esbuild binary to use instead of the pinned package.
pub const ESBUILD_ENV: &str = "FLOWHOST_ESBUILD";

/// Longest a bundle may take. A flow bundles in well under a second; this only stops a hung
/// process from hanging the build. Arbitrary.
const ESBUILD_TIMEOUT: Duration = Duration::from_secs(120);

/// The arguments every flow bundle is built with: one ES module for QuickJS (ES2023), no
/// platform assumptions (built-ins come from the guest's modules), packages' ESM builds first,
/// whitespace and syntax minified but names kept readable for stack traces in the guest.
pub const BASE_ARGS: &[&str] = &[
    "--bundle",
    "--format=esm",
    "--platform=neutral",
    "--target=es2023",
    "--main-fields=module,main",
    "--resolve-extensions=.mjs,.js,.cjs,.json",
    "--define:global=globalThis",
    "--minify-whitespace",
    "--minify-syntax",
    "--legal-comments=none",
    "--charset=utf8",
    "--color=false",
    "--log-level=warning",
    "--log-limit=0",
];

/// Name the entry has in esbuild's messages.
pub const ENTRY_NAME: &str = "flow-entry.mjs";

/// A usable esbuild binary.
#[derive(Debug, Clone)]
pub struct Esbuild {
    /// The executable.
    pub path: PathBuf,
    /// Where it came from, for logs and the cache key (`npm @esbuild/linux-x64@0.28.2`,
    /// `FLOWHOST_ESBUILD=…`, `PATH`).
    pub origin: String,
}

/// Why no esbuild could be found.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "esbuild is not available: {npm}; and {path}. Set {ESBUILD_ENV} to an esbuild binary, put \
     esbuild on PATH, or fetch @esbuild/{platform}@{ESBUILD_VERSION} with network access once"
)]
pub struct LocateError {
    /// Why the npm package could not be used.
    pub npm: String,
    /// Why `PATH` did not help.
    pub path: String,
    /// The platform package that was looked for.
    pub platform: String,
}

/// One message esbuild printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `error` or `warning`.
    pub level: &'static str,
    /// The message's first line, e.g. `Could not resolve "https"`.
    pub text: String,
    /// `file:line:column` of the offending code, when given.
    pub location: Option<Location>,
    /// Explanatory lines after the code excerpt.
    pub notes: Vec<String>,
}

/// Where esbuild found a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as esbuild printed it (relative to its working directory, or the entry name).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 0-based column, as esbuild counts.
    pub column: usize,
}

/// What a failed run left.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// The process could not be started or waited for.
    #[error("cannot run esbuild at {path}: {reason}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// It ran longer than the timeout and was killed.
    #[error("esbuild did not finish within {0:?} and was stopped")]
    Timeout(Duration),
    /// It reported errors.
    #[error("esbuild failed: {}", summary(.messages, .raw))]
    Failed {
        /// The parsed messages.
        messages: Vec<Message>,
        /// Its whole stderr, for when parsing found nothing.
        raw: String,
    },
}

fn summary(messages: &[Message], raw: &str) -> String {
    let errors: Vec<String> = messages
        .iter()
        .filter(|m| m.level == "error")
        .map(Message::to_string)
        .collect();
    if errors.is_empty() {
        raw.trim().to_string()
    } else {
        errors.join("; ")
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)?;
        if let Some(location) = &self.location {
            write!(
                f,
                " (at {}:{}:{})",
                location.file, location.line, location.column
            )?;
        }
        Ok(())
    }
}

/// The platform package of esbuild for this machine, as npm names it.
pub fn platform_package() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let cpu = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        "x86" => "ia32",
        other => other,
    };
    format!("@esbuild/{os}-{cpu}")
}

/// Finds esbuild: `FLOWHOST_ESBUILD`, then the pinned package through `resolver` (offline
/// when asked), then `PATH`.
pub async fn locate(resolver: &Resolver, offline: bool) -> Result<Esbuild, LocateError> {
    if let Some(path) = std::env::var_os(ESBUILD_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return Ok(Esbuild {
            origin: format!("{ESBUILD_ENV}={}", path.display()),
            path,
        });
    }

    let platform = platform_package();
    let npm_error = match pinned_package(resolver, &platform, offline).await {
        Ok(path) => {
            return Ok(Esbuild {
                path,
                origin: format!("npm {platform}@{ESBUILD_VERSION}"),
            });
        }
        Err(error) => error,
    };

    match find_on_path("esbuild") {
        Some(path) => {
            tracing::warn!(
                path = %path.display(),
                reason = %npm_error,
                "Using esbuild from PATH; the pinned esbuild package is not available"
            );
            Ok(Esbuild {
                path,
                origin: "PATH".to_string(),
            })
        }
        None => Err(LocateError {
            npm: npm_error,
            path: "there is no esbuild on PATH".to_string(),
            platform,
        }),
    }
}

async fn pinned_package(
    resolver: &Resolver,
    platform: &str,
    offline: bool,
) -> Result<PathBuf, String> {
    let request = Request::registry(platform, ESBUILD_VERSION);
    let resolution = resolver
        .resolve(
            &[request],
            &npm::Overrides::new(),
            ResolveOptions {
                offline,
                refresh: false,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let package = resolution
        .top_level(platform)
        .ok_or_else(|| format!("{platform} is missing from its own resolution"))?;
    let dir = resolver.package_dir(package).map_err(|e| e.to_string())?;
    let binary = dir.join(if cfg!(windows) {
        "esbuild.exe"
    } else {
        "bin/esbuild"
    });
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!("{platform} has no {}", binary.display()))
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

impl Esbuild {
    /// Bundles `entry` (its imports resolved from `cwd`) with [`BASE_ARGS`] plus `extra`, and
    /// returns the module and any warnings.
    pub async fn bundle(
        &self,
        cwd: &Path,
        entry: &str,
        extra: &[String],
    ) -> Result<(String, Vec<Message>), RunError> {
        let mut command = tokio::process::Command::new(&self.path);
        command
            .current_dir(cwd)
            .args(BASE_ARGS)
            .arg(format!("--sourcefile={ENTRY_NAME}"))
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawn_error = |e: std::io::Error| RunError::Spawn {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let mut child = command.spawn().map_err(spawn_error)?;

        // esbuild reads all of stdin before it writes, so writing first cannot deadlock.
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(entry.as_bytes())
                .await
                .map_err(spawn_error)?;
        }
        let output = tokio::time::timeout(ESBUILD_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| RunError::Timeout(ESBUILD_TIMEOUT))?
            .map_err(spawn_error)?;

        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let messages = parse_messages(&stderr);
        if !output.status.success() {
            return Err(RunError::Failed {
                messages,
                raw: stderr,
            });
        }
        let code = String::from_utf8(output.stdout).map_err(|e| RunError::Spawn {
            path: self.path.clone(),
            reason: format!("its output is not UTF-8: {e}"),
        })?;
        Ok((code, messages))
    }
}

/// Parses esbuild's colourless log output.
///
/// A message starts with `✘ [ERROR] ` or `▲ [WARNING] `; the first line indented by four spaces
/// that ends in `file:line:column:` is its location; the code excerpt (lines with `│` or `╵`)
/// is skipped; other lines indented by two spaces are notes.
pub fn parse_messages(stderr: &str) -> Vec<Message> {
    let mut messages: Vec<Message> = Vec::new();
    for line in stderr.lines() {
        if let Some(text) = line.strip_prefix("✘ [ERROR] ") {
            messages.push(new_message("error", text));
            continue;
        }
        if let Some(text) = line.strip_prefix("▲ [WARNING] ") {
            messages.push(new_message("warning", text));
            continue;
        }
        let Some(current) = messages.last_mut() else {
            continue;
        };
        if line.contains('│') || line.contains('╵') || line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("    ")
            && current.location.is_none()
            && let Some(location) = parse_location(rest)
        {
            current.location = Some(location);
            continue;
        }
        if let Some(note) = line.strip_prefix("  ") {
            current.notes.push(note.trim().to_string());
        }
    }
    messages
}

fn new_message(level: &'static str, text: &str) -> Message {
    Message {
        level,
        text: text.trim().to_string(),
        location: None,
        notes: Vec::new(),
    }
}

/// `path/to/file.mjs:1:116:` → location.
fn parse_location(text: &str) -> Option<Location> {
    let text = text.trim().strip_suffix(':')?;
    let (rest, column) = text.rsplit_once(':')?;
    let (file, line) = rest.rsplit_once(':')?;
    Some(Location {
        file: file.to_string(),
        line: line.parse().ok()?,
        column: column.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MISSING_BUILTIN: &str = r#"✘ [ERROR] Could not resolve "https"

    node_modules/@walkeros/server-core/dist/index.mjs:1:116:
      1 │ ...r from"http";import*as s from"https";function a(a,n,i={}){const ...
        ╵                                 ~~~~~~~

  The package "https" wasn't found on the file system but is built into node. Are you trying to bundle for node? You can use "--platform=node" to do that, which will remove this error.

▲ [WARNING] Comparison using the "===" operator here is always false [equals-negative-zero]

    flow-entry.mjs:3:7:
      3 │ if (x === -0) {}
        ╵        ~~~

✘ [ERROR] Expected ")" but found "}"

    flow-entry.mjs:14:2:
      14 │ (e) => { e
         ╵   ^

2 errors
"#;

    #[test]
    fn messages_locations_and_notes_are_parsed() {
        let messages = parse_messages(MISSING_BUILTIN);
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert_eq!(messages[0].level, "error");
        assert_eq!(messages[0].text, r#"Could not resolve "https""#);
        assert_eq!(
            messages[0].location,
            Some(Location {
                file: "node_modules/@walkeros/server-core/dist/index.mjs".into(),
                line: 1,
                column: 116
            })
        );
        assert!(messages[0].notes[0].starts_with("The package \"https\""));
        assert_eq!(messages[1].level, "warning");
        assert_eq!(messages[2].location.as_ref().unwrap().line, 14);
        assert_eq!(messages[2].location.as_ref().unwrap().file, ENTRY_NAME);
    }

    #[test]
    fn the_platform_package_follows_npm_names() {
        let name = platform_package();
        assert!(name.starts_with("@esbuild/"));
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(name, "@esbuild/linux-x64");
        }
    }
}
