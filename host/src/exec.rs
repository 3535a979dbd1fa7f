//! `flowhost exec`: push events read as JSON lines from stdin through one flow and print each
//! result as a JSON line, in input order.
//!
//! The flow is a bundle (`.mjs`, `.js`, `.cjs`, used as it is) or a flow config (anything else,
//! bundled first through [`crate::build`]), as the original runner decides.
//!
//! Events are pushed concurrently (up to the flow's call bound), so a flow whose destination
//! waits on I/O does not serialise the run; the output order still follows the input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::build::BuildOptions;
use crate::cache::ArtifactCache;
use crate::sandbox::{Flow, FlowSpec, Sandbox, SandboxConfig};

/// What `flowhost exec` was asked to do.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// A bundle (an ES module) or a flow config; `None` runs the embedded default flow.
    pub input: Option<PathBuf>,
    /// How to bundle a flow config (flow selection, offline mode).
    pub build: BuildOptions,
    /// The export each event is passed to.
    pub export: String,
    /// Initial `process.env` of the flow.
    pub env: BTreeMap<String, String>,
    /// The artifact cache directory; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecSummary {
    /// Events pushed.
    pub events: u64,
    /// Events whose push failed.
    pub failed: u64,
}

/// Opens the artifact cache, or runs without one when the directory is unusable.
pub fn open_cache(dir: Option<&Path>) -> Option<ArtifactCache> {
    let dir = dir?;
    match ArtifactCache::open(dir) {
        Ok(cache) => Some(cache),
        Err(e) => {
            tracing::warn!(error = %e, "Running without an artifact cache; every start compiles");
            None
        }
    }
}

/// True when `path` names a prebuilt bundle rather than a flow config: `.mjs`, `.js` or `.cjs`,
/// as the original runner decides.
pub fn is_bundle(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| matches!(ext, "mjs" | "js" | "cjs"))
}

/// Loads the flow of `options` into a new sandbox.
pub async fn start(options: &ExecOptions) -> anyhow::Result<(Arc<Sandbox>, Flow)> {
    // A flow config is bundled before the sandbox starts, so a broken flow fails early.
    // Without a cache directory its packages still need a store; a temporary one lives as long
    // as the build.
    let mut bundle = None;
    if let Some(path) = options.input.as_ref().filter(|path| !is_bundle(path)) {
        let temporary;
        let store_dir = match &options.cache_dir {
            Some(dir) => dir.as_path(),
            None => {
                temporary = tempfile::tempdir()
                    .context("cannot create a temporary directory for the package store")?;
                temporary.path()
            }
        };
        let bundler = crate::bundle::open_bundler(store_dir)?;
        let built = bundler
            .bundle(path, &options.build)
            .await
            .map_err(crate::bundle::problems)?;
        bundle = Some((path, built));
    }

    let config = SandboxConfig::from_env().context("invalid sandbox setting")?;
    let cache = open_cache(options.cache_dir.as_deref());
    let sandbox = Sandbox::new(config, cache).await?;
    let (name, code) = match (bundle, &options.input) {
        (Some((path, bundle)), _) => {
            let artifact = crate::build::compile(&sandbox, bundle, path)
                .await
                .map_err(crate::bundle::problems)?;
            (artifact.bundle.flow, artifact.code)
        }
        (None, Some(path)) => {
            let source = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read the flow bundle {}; check the path",
                    path.display()
                )
            })?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "flow".into());
            let code = sandbox
                .compile_flow(&source)
                .await
                .with_context(|| format!("in {}", path.display()))?;
            (name, code)
        }
        (None, None) => {
            let code = sandbox
                .compile_flow(crate::DEFAULT_FLOW)
                .await
                .context("in the embedded default flow")?;
            ("default".to_string(), code)
        }
    };
    let spec = FlowSpec {
        name,
        code,
        env: options.env.clone(),
        config: serde_json::Value::Null,
        outbound: None,
    };
    let flow = sandbox.start_flow(spec).await?;
    Ok((sandbox, flow))
}

/// Runs `flowhost exec` on stdin and stdout.
pub async fn run(options: ExecOptions) -> anyhow::Result<ExecSummary> {
    let (_sandbox, flow) = start(&options).await?;
    let flow = Arc::new(flow);
    let summary = push_lines(
        &flow,
        &options.export,
        BufReader::new(tokio::io::stdin()),
        tokio::io::stdout(),
    )
    .await?;
    flow.shutdown().await;
    Ok(summary)
}

/// Pushes each non-blank line of `input` to `export` of `flow` and writes one result line per
/// event to `output`: `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`.
pub async fn push_lines<R, W>(
    flow: &Arc<Flow>,
    export: &str,
    input: R,
    mut output: W,
) -> anyhow::Result<ExecSummary>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    // Keep a margin below the flow's bound so that exec never trips its own "busy" error.
    let window = 512usize;
    let mut lines = input.lines();
    let mut in_flight = FuturesOrdered::new();
    let mut summary = ExecSummary {
        events: 0,
        failed: 0,
    };
    let mut line_no = 0u64;
    let mut eof = false;

    loop {
        tokio::select! {
            biased;
            Some((ok, text)) = in_flight.next(), if !in_flight.is_empty() => {
                let (ok, text): (bool, String) = (ok, text);
                summary.events += 1;
                if !ok {
                    summary.failed += 1;
                }
                output.write_all(text.as_bytes()).await.context("cannot write to stdout")?;
                output.write_all(b"\n").await.context("cannot write to stdout")?;
            }
            line = lines.next_line(), if !eof && in_flight.len() < window => {
                match line.context("cannot read events from stdin")? {
                    None => eof = true,
                    Some(line) if line.trim().is_empty() => {}
                    Some(line) => {
                        line_no += 1;
                        let flow = flow.clone();
                        let export = export.to_string();
                        let n = line_no;
                        in_flight.push_back(async move { push_one(&flow, &export, n, &line).await });
                    }
                }
            }
            else => break,
        }
    }
    output.flush().await.context("cannot write to stdout")?;
    Ok(summary)
}

async fn push_one(flow: &Flow, export: &str, line_no: u64, line: &str) -> (bool, String) {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(line) {
        let error = format!("input line {line_no} is not JSON: {e}");
        return (
            false,
            serde_json::json!({ "ok": false, "error": error }).to_string(),
        );
    }
    match flow.call(export, line).await {
        Ok(result) => (true, format!("{{\"ok\":true,\"result\":{result}}}")),
        Err(e) => (
            false,
            serde_json::json!({ "ok": false, "error": e.to_string() }).to_string(),
        ),
    }
}

/// The cache directory when none is configured: `$XDG_CACHE_HOME/flowhost` or
/// `~/.cache/flowhost`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("flowhost"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".cache/flowhost"))
}
