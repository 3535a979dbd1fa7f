//! The build pipeline: a flow config becomes a JavaScript bundle and then a sandbox artifact.
//!
//! Stages, each timed: load the config ([`crate::config`]), plan the entry module
//! ([`entry`]), resolve its packages ([`npm`]), lay them out as a `node_modules` tree, bundle
//! with esbuild ([`esbuild`], Node built-ins routed to the guest's modules from
//! [`guest_modules`]) and compile to QuickJS bytecode (the sandbox). Two caches make a repeated
//! build cheap: the npm store answers the same requests without network, and the bundle cache
//! (in the artifact cache) keeps each bundle under a key of everything that decides it (the
//! entry module, the resolved packages, the guest's modules, the esbuild release and flowhost's
//! version), so a warm build runs no esbuild; the sandbox caches the bytecode by source.
//!
//! This module does not run flows or serve HTTP; it hands the sandbox a module and tells the
//! host, through the [`Manifest`], which sources it must serve itself.

pub mod entry;
pub mod esbuild;
pub mod guest_modules;
pub mod javascript;
pub mod npm;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::cache::{ArtifactCache, Compat};
use crate::config::{ConfigErrors, LoadedFlow};
use crate::sandbox::{FlowCode, Sandbox, SandboxError};
pub use entry::{Manifest, NativeSource, PackageVersion, PlanError};
use esbuild::Esbuild;
use npm::{NpmConfig, NpmError, Resolver, Store};

/// Bumped whenever the generated entry or the bundle cache payload changes shape, so older
/// cache entries are rebuilt instead of reused.
const BUNDLE_FORMAT: u32 = 1;

/// Artifact cache kind of bundles.
const BUNDLE_KIND: &str = "bundle";

/// How to build one flow.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The flow to select in a config with several (`--flow`, `FLOW_NAME`).
    pub flow_name: Option<String>,
    /// Use only the package store: no registry requests.
    pub offline: bool,
    /// Run esbuild even when the bundle cache has the bundle.
    pub skip_bundle_cache: bool,
}

/// Why a flow could not be built. Each variant names the input at fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The config has problems; every one is listed.
    #[error("{0}")]
    Config(ConfigErrors),
    /// The config loads but cannot become a bundle.
    #[error("{}", plan_lines(file, errors).join("\n"))]
    Plan {
        /// The config file.
        file: PathBuf,
        /// Every problem found.
        errors: Vec<PlanError>,
    },
    /// Packages could not be resolved, fetched or laid out.
    #[error("{0}")]
    Npm(#[from] NpmError),
    /// No esbuild binary.
    #[error(transparent)]
    Esbuild(#[from] esbuild::LocateError),
    /// A package imports a Node built-in the guest does not provide.
    #[error(
        "{importer} imports the Node module \"{module}\" ({file}), which flowhost's sandbox does \
         not provide: there is no guest-shim/js/node/{name}.js. Use a step that does not need \
         it, or add the module to the guest",
        name = module.strip_prefix("node:").unwrap_or(module)
    )]
    MissingNodeModule {
        /// The specifier as imported (`https`, `node:fs`).
        module: String,
        /// The package whose file imports it (or `the flow's inline code`).
        importer: String,
        /// The file and position, as esbuild reported it.
        file: String,
    },
    /// A package imports something that is not installed.
    #[error(
        "{importer} imports \"{specifier}\" ({file}), which is not installed; add it to \
         config.bundle.packages, or check the package's dependencies"
    )]
    Unresolved {
        /// The import specifier.
        specifier: String,
        /// The importing package.
        importer: String,
        /// The file and position.
        file: String,
    },
    /// Inline code (`$code:`) that esbuild cannot parse.
    #[error("{}: {json_path}: the inline code does not compile: {message}", file.display())]
    InlineCode {
        /// The config file.
        file: PathBuf,
        /// The config's JSON path of the code.
        json_path: String,
        /// esbuild's message and the offending line.
        message: String,
    },
    /// Any other esbuild failure.
    #[error("bundling the flow failed: {0}")]
    Bundle(esbuild::RunError),
    /// A file in the build directory could not be written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bundle does not compile in the sandbox.
    #[error(transparent)]
    Compile(#[from] SandboxError),
}

/// Plan errors as config errors are written: `<file>: <problem>`.
fn plan_lines(file: &Path, errors: &[PlanError]) -> Vec<String> {
    errors
        .iter()
        .map(|error| format!("{}: {error}", file.display()))
        .collect()
}

impl BuildError {
    /// One line per problem, for `flowhost validate` and logs.
    pub fn problems(&self) -> Vec<String> {
        match self {
            BuildError::Config(errors) => {
                let mut out: Vec<String> = errors.iter().map(ToString::to_string).collect();
                if errors.omitted() > 0 {
                    out.push(format!("... and {} more", errors.omitted()));
                }
                out
            }
            BuildError::Plan { file, errors } => plan_lines(file, errors),
            other => vec![other.to_string()],
        }
    }
}

/// How long each stage took; `None` for a stage that did not run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Reading, checking and resolving the config, and planning the entry.
    pub load: Duration,
    /// Resolving packages (from the index when warm).
    pub resolve: Duration,
    /// Laying out `node_modules`; skipped on a bundle cache hit.
    pub materialize: Option<Duration>,
    /// Running esbuild; skipped on a bundle cache hit.
    pub esbuild: Option<Duration>,
    /// Compiling to bytecode (from the artifact cache when warm).
    pub compile: Option<Duration>,
}

impl StageTimings {
    /// The sum of the stages that ran.
    pub fn total(&self) -> Duration {
        self.load
            + self.resolve
            + self.materialize.unwrap_or_default()
            + self.esbuild.unwrap_or_default()
            + self.compile.unwrap_or_default()
    }
}

fn ms(duration: Option<Duration>) -> f64 {
    duration.map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

impl fmt::Display for StageTimings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = |d: Option<Duration>| match d {
            Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1000.0),
            None => "skipped".to_string(),
        };
        write!(
            f,
            "load {}, resolve {}, materialize {}, esbuild {}, compile {}, total {:.1} ms",
            stage(Some(self.load)),
            stage(Some(self.resolve)),
            stage(self.materialize),
            stage(self.esbuild),
            stage(self.compile),
            self.total().as_secs_f64() * 1000.0
        )
    }
}

/// A bundled flow.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The flow's name.
    pub flow: String,
    /// The ES module the sandbox runs.
    pub module: String,
    /// What the host needs to know about it.
    pub manifest: Manifest,
    /// Whether it came from the bundle cache.
    pub cached: bool,
    /// Stage timings so far (no compile).
    pub timings: StageTimings,
}

/// A bundled and compiled flow, ready for [`Sandbox::start_flow`].
#[derive(Debug, Clone)]
pub struct FlowArtifact {
    /// The bundle.
    pub bundle: Bundle,
    /// Its bytecode.
    pub code: Arc<FlowCode>,
    /// All stage timings.
    pub timings: StageTimings,
}

/// What the bundle cache stores for a key.
#[derive(Serialize, Deserialize)]
struct CachedBundle {
    module: String,
    manifest: Manifest,
}

/// Builds bundles from flow configs; holds the npm client, the caches and the located esbuild.
pub struct Bundler {
    /// The npm client and its package store.
    resolver: Resolver,
    /// Where bundles are kept by key; `None` when the cache directory is unusable.
    cache: Option<ArtifactCache>,
    /// `<cache>/build`: the guest's modules and one directory per package layout.
    work_dir: PathBuf,
    /// esbuild, located on the first bundle that needs it.
    esbuild: Mutex<Option<Esbuild>>,
}

impl Bundler {
    /// A bundler whose package store, bundle cache and build directories live under
    /// `cache_dir`, fetching from the registries of `npm`.
    pub fn open(cache_dir: &Path, npm: NpmConfig) -> Result<Bundler, BuildError> {
        let store = Store::open(cache_dir)?;
        let resolver = Resolver::new(npm, store)?;
        let cache = match ArtifactCache::open(cache_dir) {
            Ok(cache) => Some(cache),
            Err(e) => {
                tracing::warn!(error = %e, "Bundling without a bundle cache");
                None
            }
        };
        Ok(Bundler {
            resolver,
            cache,
            work_dir: cache_dir.join("build"),
            esbuild: Mutex::new(None),
        })
    }

    /// The npm client.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Bundles the flow of the config at `path`.
    pub async fn bundle(&self, path: &Path, options: &BuildOptions) -> Result<Bundle, BuildError> {
        let mut timings = StageTimings::default();

        let started = Instant::now();
        let flow = crate::config::load_flow_config(path, options.flow_name.as_deref())
            .map_err(BuildError::Config)?;
        let entry = plan(&flow)?;
        timings.load = started.elapsed();

        let started = Instant::now();
        let resolve_options = npm::ResolveOptions {
            offline: options.offline,
            refresh: false,
        };
        let resolution = self
            .resolver
            .resolve(&entry.requests, &entry.overrides, resolve_options)
            .await?;
        timings.resolve = started.elapsed();

        // Everything that decides the bundle goes into its key; the release stamped on the
        // collector is derived from it, so an unchanged flow keeps its release.
        let key = bundle_key(&entry.source, resolution.id());
        let key_hex = hex::encode(key);
        let mut manifest = entry.manifest.clone();
        manifest.key = key_hex.clone();
        manifest.packages = entry
            .requests
            .iter()
            .filter_map(|request| resolution.top_level(&request.name))
            .map(|package| PackageVersion {
                name: package
                    .location
                    .trim_start_matches("node_modules/")
                    .to_string(),
                version: package.version.clone(),
            })
            .collect();

        if !options.skip_bundle_cache
            && let Some(cached) = self.cached_bundle(&key)
        {
            return Ok(Bundle {
                flow: flow.name,
                module: cached.module,
                manifest: cached.manifest,
                cached: true,
                timings,
            });
        }

        let started = Instant::now();
        let build_dir = self.work_dir.join(resolution.id());
        self.resolver.materialize(&resolution, &build_dir).await?;
        let modules_dir =
            guest_modules::write_to(&self.work_dir).map_err(|source| BuildError::Io {
                action: "write the guest's Node modules into",
                path: self.work_dir.clone(),
                source,
            })?;
        timings.materialize = Some(started.elapsed());

        let started = Instant::now();
        let esbuild = self.esbuild(options.offline).await?;
        let source = entry.with_release(&key_hex[..16]);
        let (module, warnings) = esbuild
            .bundle(
                &build_dir,
                &source,
                &guest_modules::esbuild_args(&modules_dir),
            )
            .await
            .map_err(|error| explain_esbuild_error(error, &entry, &source))?;
        for warning in &warnings {
            tracing::warn!(flow = %flow.name, warning = %warning, "esbuild warning");
        }
        timings.esbuild = Some(started.elapsed());

        self.store_bundle(&key, &module, &manifest);
        Ok(Bundle {
            flow: flow.name,
            module,
            manifest,
            cached: false,
            timings,
        })
    }

    /// Bundles and compiles the flow of the config at `path`, and logs the stage timings in
    /// one line.
    pub async fn build(
        &self,
        sandbox: &Sandbox,
        path: &Path,
        options: &BuildOptions,
    ) -> Result<FlowArtifact, BuildError> {
        let bundle = self.bundle(path, options).await?;
        compile(sandbox, bundle, path).await
    }

    async fn esbuild(&self, offline: bool) -> Result<Esbuild, BuildError> {
        let mut slot = self.esbuild.lock().await;
        if let Some(esbuild) = slot.as_ref() {
            return Ok(esbuild.clone());
        }
        let located = esbuild::locate(&self.resolver, offline).await?;
        tracing::debug!(path = %located.path.display(), origin = %located.origin, "Using esbuild");
        *slot = Some(located.clone());
        Ok(located)
    }

    fn cached_bundle(&self, key: &[u8; 32]) -> Option<CachedBundle> {
        let cache = self.cache.as_ref()?;
        let hit = match cache.lookup(BUNDLE_KIND, key, &bundle_compat()) {
            Ok(hit) => hit?,
            Err(e) => {
                tracing::warn!(error = %e, "Bundle cache lookup failed; bundling");
                return None;
            }
        };
        let read = std::fs::read(&hit.path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
        match read {
            Ok(cached) => Some(cached),
            Err(error) => {
                tracing::warn!(path = %hit.path.display(), %error, "Cached bundle is unreadable; bundling");
                None
            }
        }
    }

    fn store_bundle(&self, key: &[u8; 32], module: &str, manifest: &Manifest) {
        let Some(cache) = &self.cache else { return };
        let payload = CachedBundle {
            module: module.to_string(),
            manifest: manifest.clone(),
        };
        let result = serde_json::to_vec(&payload)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                cache
                    .store(BUNDLE_KIND, key, &bundle_compat(), &bytes)
                    .map_err(|e| e.to_string())
            });
        if let Err(error) = result {
            tracing::warn!(%error, "Cannot cache the bundle; the next build runs esbuild again");
        }
    }
}

/// Compiles a bundle to bytecode in `sandbox` and logs the timings of every stage of its build
/// (`path` is the config it came from) in one line.
pub async fn compile(
    sandbox: &Sandbox,
    bundle: Bundle,
    path: &Path,
) -> Result<FlowArtifact, BuildError> {
    let started = Instant::now();
    let code = sandbox.compile_flow(&bundle.module).await?;
    let mut timings = bundle.timings;
    timings.compile = Some(started.elapsed());
    tracing::info!(
        flow = %bundle.flow,
        config = %path.display(),
        load_ms = ms(Some(timings.load)),
        resolve_ms = ms(Some(timings.resolve)),
        materialize_ms = ms(timings.materialize),
        esbuild_ms = ms(timings.esbuild),
        compile_ms = ms(timings.compile),
        total_ms = ms(Some(timings.total())),
        bundle_cached = bundle.cached,
        bytecode_cached = code.cached,
        bundle_bytes = bundle.module.len(),
        bytecode_bytes = code.bytecode.len(),
        "Flow built"
    );
    Ok(FlowArtifact {
        bundle,
        code,
        timings,
    })
}

/// Loads the config at `path` and checks that it can become a bundle: every check short of
/// resolving packages, without network and without reading more than the config and local
/// packages' manifests.
pub fn validate(path: &Path, flow_name: Option<&str>) -> Result<LoadedFlow, BuildError> {
    let flow = crate::config::load_flow_config(path, flow_name).map_err(BuildError::Config)?;
    plan(&flow)?;
    Ok(flow)
}

fn plan(flow: &LoadedFlow) -> Result<entry::Entry, BuildError> {
    entry::plan(flow).map_err(|errors| BuildError::Plan {
        file: flow.file.clone(),
        errors,
    })
}

/// The bundle cache key: the entry, the packages' layout, the guest's modules, the esbuild
/// release and arguments, and the cache format.
fn bundle_key(entry_source: &str, resolution_id: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    part(&BUNDLE_FORMAT.to_le_bytes());
    part(env!("CARGO_PKG_VERSION").as_bytes());
    part(esbuild::ESBUILD_VERSION.as_bytes());
    part(
        std::env::var(esbuild::ESBUILD_ENV)
            .unwrap_or_default()
            .as_bytes(),
    );
    part(esbuild::BASE_ARGS.join(" ").as_bytes());
    part(guest_modules::digest().as_bytes());
    part(resolution_id.as_bytes());
    part(entry_source.as_bytes());
    hasher.finalize().into()
}

/// Bundles do not depend on the engine; the cache's compatibility fields name the bundler.
fn bundle_compat() -> Compat {
    Compat {
        flowhost_version: env!("CARGO_PKG_VERSION").to_string(),
        wasmtime_version: "none".to_string(),
        engine_hash: format!("esbuild-{}", esbuild::ESBUILD_VERSION),
    }
}

/// Turns esbuild's first error into the most specific [`BuildError`]: a Node built-in the
/// guest lacks, a missing package, or broken inline code at its JSON path.
fn explain_esbuild_error(
    error: esbuild::RunError,
    entry: &entry::Entry,
    source: &str,
) -> BuildError {
    let esbuild::RunError::Failed { messages, .. } = &error else {
        return BuildError::Bundle(error);
    };
    let Some(first) = messages.iter().find(|m| m.level == "error") else {
        return BuildError::Bundle(error);
    };
    let location = first.location.as_ref();
    let in_entry = location.is_some_and(|l| l.file == esbuild::ENTRY_NAME);
    // Files under node_modules are named from the package on: the rest of the path is the
    // store's layout, which tells the user nothing.
    let file = location.map_or_else(
        || "unknown file".to_string(),
        |l| {
            let file = l
                .file
                .rsplit_once("node_modules/")
                .map_or(l.file.as_str(), |(_, f)| f);
            format!("{file}:{}:{}", l.line, l.column)
        },
    );

    if let Some(specifier) = first
        .text
        .strip_prefix("Could not resolve \"")
        .and_then(|rest| rest.strip_suffix('"'))
    {
        let importer = if in_entry {
            "the flow's generated entry".to_string()
        } else {
            location
                .and_then(|l| importing_package(&l.file))
                .unwrap_or_else(|| "a bundled file".to_string())
        };
        if guest_modules::is_node_builtin(specifier) {
            return BuildError::MissingNodeModule {
                module: specifier.to_string(),
                importer,
                file,
            };
        }
        return BuildError::Unresolved {
            specifier: specifier.to_string(),
            importer,
            file,
        };
    }

    if let Some(location) = location.filter(|_| in_entry)
        && let Some(span) = entry
            .code_spans
            .iter()
            .find(|s| (s.first_line..=s.last_line + 1).contains(&location.line))
    {
        let line = source
            .lines()
            .nth(location.line.saturating_sub(1))
            .unwrap_or("");
        return BuildError::InlineCode {
            file: entry.file.clone(),
            json_path: span.json_path.clone(),
            message: format!("{} in `{}`", first.text, line.trim()),
        };
    }
    BuildError::Bundle(error)
}

/// The package a file under `node_modules` belongs to: the part after the last
/// `node_modules/`, one segment or `@scope/name`.
fn importing_package(file: &str) -> Option<String> {
    let (_, rest) = file.rsplit_once("node_modules/")?;
    let mut parts = rest.split('/');
    let first = parts.next()?;
    if first.starts_with('@') {
        Some(format!("{first}/{}", parts.next()?))
    } else {
        Some(first.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_importing_package_is_read_from_the_path() {
        assert_eq!(
            importing_package("node_modules/@walkeros/server-core/dist/index.mjs").as_deref(),
            Some("@walkeros/server-core")
        );
        assert_eq!(
            importing_package("../x/node_modules/a/node_modules/ws/lib/x.js").as_deref(),
            Some("ws")
        );
        assert_eq!(importing_package("flow-entry.mjs"), None);
    }

    #[test]
    fn bundle_keys_change_with_the_entry_and_the_packages() {
        let a = bundle_key("entry", "layout-1");
        assert_eq!(a, bundle_key("entry", "layout-1"));
        assert_ne!(a, bundle_key("entry ", "layout-1"));
        assert_ne!(a, bundle_key("entry", "layout-2"));
    }

    #[test]
    fn timings_show_skipped_stages() {
        let timings = StageTimings {
            load: Duration::from_millis(2),
            resolve: Duration::from_millis(3),
            materialize: None,
            esbuild: None,
            compile: Some(Duration::from_millis(5)),
        };
        assert_eq!(
            timings.to_string(),
            "load 2.0 ms, resolve 3.0 ms, materialize skipped, esbuild skipped, compile 5.0 ms, \
             total 10.0 ms"
        );
    }
}
