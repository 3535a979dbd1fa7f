//! `flowhost validate` and `flowhost bundle`: the command-line front of the build pipeline.
//!
//! `validate` loads a flow config and plans its bundle without network and reports every
//! problem on its own line. `bundle` runs the whole pipeline ([`crate::build`]) and writes the
//! module, its manifest and its bytecode into an output directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::build::{self, BuildError, BuildOptions, Bundler, npm::NpmConfig};
use crate::config::{LoadOptions, load_flow_config_with};
use crate::sandbox::{Sandbox, SandboxConfig};

/// Name of the bundle in the output directory.
pub const MODULE_FILE: &str = "flow.mjs";
/// Name of the manifest in the output directory.
pub const MANIFEST_FILE: &str = "flow.json";
/// Name of the bytecode in the output directory. It is only valid for the flowhost build that
/// wrote it; `exec` and `run` take the module and find the bytecode in the artifact cache.
pub const BYTECODE_FILE: &str = "flow.qjsbc";

/// The flow to select: the `--flow` argument, else `WALKEROS_FLOW_NAME`, else `FLOW_NAME`, as
/// the original CLI reads them.
pub fn flow_name(argument: Option<String>) -> Option<String> {
    argument
        .or_else(|| std::env::var("WALKEROS_FLOW_NAME").ok())
        .or_else(|| std::env::var("FLOW_NAME").ok())
        .filter(|name| !name.is_empty())
}

/// The outcome of `flowhost validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// The flow can be bundled; its name.
    Valid(String),
    /// Every problem found, one line each.
    Invalid(Vec<String>),
}

/// Validates the flow `flow_name` of the config at `path`. With `env`, every `$env.NAME`
/// without a default must be set in it, as where the flow will run.
pub fn validate(
    path: &Path,
    flow_name: Option<&str>,
    env: Option<&HashMap<String, String>>,
) -> Validation {
    // The environment check is the loader's; without one the pipeline's own validation runs.
    if let Some(env) = env
        && let Err(errors) = load_flow_config_with(
            path,
            &LoadOptions {
                flow_name,
                env: Some(env),
            },
        )
    {
        return Validation::Invalid(BuildError::Config(errors).problems());
    }
    match crate::build::validate(path, flow_name) {
        Ok(flow) => Validation::Valid(flow.name),
        Err(error) => Validation::Invalid(error.problems()),
    }
}

/// What `flowhost bundle` was asked to do.
#[derive(Debug, Clone)]
pub struct BundleCommand {
    /// The flow config.
    pub config: PathBuf,
    /// The output directory.
    pub out_dir: PathBuf,
    /// Flow selection, offline mode, cache bypass.
    pub options: BuildOptions,
    /// Where the package store and the caches live.
    pub cache_dir: PathBuf,
}

/// A build error as one line per problem.
pub fn problems(error: BuildError) -> anyhow::Error {
    anyhow::anyhow!("{}", error.problems().join("\n"))
}

/// Opens a bundler on `cache_dir` with the npm configuration of the working directory.
pub fn open_bundler(cache_dir: &Path) -> anyhow::Result<Bundler> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let npm = NpmConfig::from_env(&cwd)?;
    Ok(Bundler::open(cache_dir, npm)?)
}

/// Runs `flowhost bundle`: bundles and compiles the flow, writes `flow.mjs`, `flow.json` and
/// `flow.qjsbc` into the output directory and returns a report for stdout.
pub async fn run(command: BundleCommand) -> anyhow::Result<String> {
    // Bundle before the sandbox starts, so a broken flow fails before the shim is prepared.
    let bundler = open_bundler(&command.cache_dir)?;
    let bundle = bundler
        .bundle(&command.config, &command.options)
        .await
        .map_err(problems)?;
    let config = SandboxConfig::from_env().context("invalid sandbox setting")?;
    let cache = crate::exec::open_cache(Some(&command.cache_dir));
    let sandbox = Sandbox::new(config, cache).await?;
    let artifact = build::compile(&sandbox, bundle, &command.config)
        .await
        .map_err(problems)?;

    let out = &command.out_dir;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output directory {}", out.display()))?;
    let manifest = serde_json::to_vec_pretty(&artifact.bundle.manifest)?;
    let files: [(&str, &[u8]); 3] = [
        (MODULE_FILE, artifact.bundle.module.as_bytes()),
        (MANIFEST_FILE, &manifest),
        (BYTECODE_FILE, &artifact.code.bytecode),
    ];
    let mut report = format!(
        "flow \"{}\" bundled into {}\n",
        artifact.bundle.flow,
        out.display()
    );
    for (name, bytes) in files {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        report.push_str(&format!("  {name:<12} {:>9} bytes\n", bytes.len()));
    }
    for source in &artifact.bundle.manifest.native_sources {
        report.push_str(&format!(
            "  source {} ({}) is served by the host\n",
            source.id, source.package
        ));
    }
    report.push_str(&format!(
        "  bundle {}, bytecode {}\n  stages: {}\n",
        if artifact.bundle.cached {
            "from cache"
        } else {
            "built"
        },
        if artifact.code.cached {
            "from cache"
        } else {
            "compiled"
        },
        artifact.timings
    ));
    Ok(report)
}
