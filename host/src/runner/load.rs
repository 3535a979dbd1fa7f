//! Turning `BUNDLE` into a running flow generation: find or download the input, compile it,
//! start it, and read its HTTP source settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use super::generation::{ConfigSource, Generation};
use super::options::DEFAULT_BUNDLES;
use crate::intake::{Delivery, HttpSource, SourceSettings};
use crate::metrics::Metrics;
use crate::sandbox::{CallError, FlowSpec, Sandbox};

/// Variables of the runner's own environment a flow never sees: credentials for the walkerOS
/// API and the observer.
const HIDDEN_ENV: [&str; 4] = [
    "WALKEROS_TOKEN",
    "WALKEROS_DEPLOY_TOKEN",
    "WALKEROS_INGEST_TOKEN",
    "WALKEROS_PREVIEW_KEYRING",
];

/// How a bundle download is bounded.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the flow comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleInput {
    /// A local file.
    File(PathBuf),
    /// An http(s) URL.
    Url(String),
    /// Nothing configured and no default file present: the flow built into the binary, so that
    /// a first `flowhost run` serves something.
    Embedded,
}

impl BundleInput {
    /// `BUNDLE` as given, or the first existing default path.
    pub fn resolve(bundle: Option<&str>) -> anyhow::Result<Self> {
        match bundle.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) if b.starts_with("http://") || b.starts_with("https://") => {
                Ok(Self::Url(b.to_string()))
            }
            Some(b) => Ok(Self::File(PathBuf::from(b))),
            None => Ok(DEFAULT_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .map_or(Self::Embedded, Self::File)),
        }
    }

    /// Whether the input is a prebuilt JavaScript bundle rather than a flow config, by its
    /// extension (a URL's query and fragment ignored).
    pub fn is_javascript(&self) -> bool {
        let name = match self {
            Self::File(path) => path.to_string_lossy().into_owned(),
            Self::Url(url) => url.split(['?', '#']).next().unwrap_or(url).to_string(),
            Self::Embedded => return true,
        };
        [".mjs", ".js", ".cjs"]
            .iter()
            .any(|ext| name.ends_with(ext))
    }

    /// The name the flow gets when nothing better is known: the file name without extension.
    pub fn flow_name(&self) -> String {
        let path = match self {
            Self::File(path) => path.clone(),
            Self::Url(url) => PathBuf::from(url.split(['?', '#']).next().unwrap_or(url)),
            Self::Embedded => return "default".to_string(),
        };
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "flow".to_string())
    }

    /// Where `/status` says it came from.
    pub fn config_source(&self) -> ConfigSource {
        match self {
            Self::File(_) | Self::Embedded => ConfigSource::Local,
            Self::Url(_) => ConfigSource::Url,
        }
    }

    /// The input's text.
    pub async fn read(&self) -> anyhow::Result<String> {
        match self {
            Self::File(path) => std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read the flow bundle {}; check BUNDLE",
                    path.display()
                )
            }),
            Self::Url(url) => download(url).await,
            Self::Embedded => Ok(crate::DEFAULT_FLOW.to_string()),
        }
    }
}

impl std::fmt::Display for BundleInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(url) => f.write_str(url),
            Self::Embedded => f.write_str("the embedded default flow"),
        }
    }
}

/// Downloads a bundle, retrying twice on network errors and 5xx answers (after 2 s and 5 s, as
/// the original runner's fetches do).
async fn download(url: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .timeout(DOWNLOAD_TIMEOUT)
        .build()
        .context("cannot build the HTTP client")?;
    let mut last_error = String::new();
    for (attempt, backoff) in [0u64, 2, 5].into_iter().enumerate() {
        if backoff > 0 {
            tokio::time::sleep(Duration::from_secs(backoff)).await;
        }
        match client.get(url).send().await {
            Ok(response) if response.status().is_success() => {
                let text = response
                    .text()
                    .await
                    .with_context(|| format!("cannot read the bundle from {url}"))?;
                if text.trim().is_empty() {
                    bail!("the bundle at {url} is empty");
                }
                return Ok(text);
            }
            Ok(response) if response.status().is_server_error() => {
                last_error = format!("HTTP {}", response.status());
            }
            Ok(response) => {
                bail!(
                    "cannot fetch the bundle from {url}: HTTP {}",
                    response.status()
                )
            }
            Err(e) => last_error = e.to_string(),
        }
        tracing::warn!(url, attempt = attempt + 1, error = %last_error, "Bundle download failed");
    }
    bail!("cannot fetch the bundle from {url} after 3 attempts: {last_error}")
}

/// What a generation needs besides its input.
pub struct LoadContext<'a> {
    /// The sandbox flows run in.
    pub sandbox: &'a Arc<Sandbox>,
    /// Process counters.
    pub metrics: &'a Arc<Metrics>,
    /// Extra `process.env` entries (`--env`).
    pub env: &'a [(String, String)],
    /// `--flow` / `FLOW_NAME`.
    pub flow_name: Option<&'a str>,
    /// Limit for request bodies to arrive.
    pub body_timeout: Duration,
    /// Where flow configs keep their package store and bundles; `None` uses a temporary one.
    pub cache_dir: Option<&'a Path>,
}

/// Loads `input` as generation `number`.
pub async fn load_generation(
    input: &BundleInput,
    number: u64,
    cx: &LoadContext<'_>,
) -> anyhow::Result<Generation> {
    if !input.is_javascript() {
        return load_config(input, number, cx).await;
    }
    let source = input.read().await?;
    let code = cx
        .sandbox
        .compile_flow(&source)
        .await
        .with_context(|| format!("in {input}"))?;
    count_cache(cx.metrics, code.cached);
    let sha256 = code.source_sha256.clone();
    start(
        cx,
        input.flow_name(),
        sha256,
        code,
        SourceOrigin::Bundle,
        number,
        input,
    )
    .await
}

/// Where a generation's HTTP source settings come from.
enum SourceOrigin {
    /// Known before the flow starts (a flow config), with the bundle's exports.
    Known(Option<Box<SourceSettings>>, Vec<String>),
    /// The bundle's `sources()` export, read once it runs.
    Bundle,
}

fn count_cache(metrics: &Metrics, cached: bool) {
    let counter = if cached {
        &metrics.artifact_cache_hits
    } else {
        &metrics.artifact_cache_misses
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Starts compiled flow code as generation `number` and wires its HTTP source.
async fn start(
    cx: &LoadContext<'_>,
    name: String,
    sha256: String,
    code: Arc<crate::sandbox::FlowCode>,
    settings: SourceOrigin,
    number: u64,
    input: &BundleInput,
) -> anyhow::Result<Generation> {
    let spec = FlowSpec {
        name: name.clone(),
        code,
        env: flow_env(cx.env),
        config: Value::Null,
        outbound: None,
    };
    let flow = Arc::new(cx.sandbox.start_flow(spec).await?);

    let (settings, exports) = match settings {
        SourceOrigin::Known(settings, exports) => (settings.map(|s| *s), Some(exports)),
        SourceOrigin::Bundle => match bundle_sources(&flow).await {
            Ok(settings) => (settings, None),
            Err(e) => {
                flow.shutdown().await;
                return Err(e);
            }
        },
    };
    let intake = settings.map(|settings| {
        tracing::info!(
            flow = %name,
            source = %settings.id,
            paths = %settings.routes.iter().map(|r| r.pattern.source.as_str()).collect::<Vec<_>>().join(", "),
            "HTTP source ready"
        );
        // Keep a margin below the flow's own call bound so the intake never trips "busy".
        let limits = cx.sandbox.config();
        let window = (limits.max_calls_per_flow * 3 / 4).max(1);
        let delivery = Delivery::new(
            flow.clone(),
            window,
            limits.call_timeout,
            exports.as_deref(),
        );
        Arc::new(HttpSource::new(
            settings,
            delivery,
            cx.metrics.clone(),
            cx.body_timeout,
        ))
    });
    if intake.is_none() {
        tracing::warn!(flow = %name, "The flow has no HTTP source; every intake request gets 503");
    }
    Ok(Generation::new(
        number,
        name,
        "local".to_string(),
        input.config_source(),
        sha256,
        flow,
        intake,
    ))
}

/// A flow config: bundled and compiled through the build pipeline (the package store and the
/// bundle cache live in the cache directory), its HTTP source read from the config.
async fn load_config(
    input: &BundleInput,
    number: u64,
    cx: &LoadContext<'_>,
) -> anyhow::Result<Generation> {
    let BundleInput::File(path) = input else {
        bail!("{input} is not a .mjs/.js/.cjs bundle; a flow config from a URL is not supported");
    };
    let flow =
        crate::config::load_flow_config(path, cx.flow_name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let settings =
        config_source_settings(&flow).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;

    // Without a cache directory the packages still need a store; a temporary one lives as long
    // as the build.
    let temporary;
    let store_dir = match cx.cache_dir {
        Some(dir) => dir,
        None => {
            temporary = tempfile::tempdir()
                .context("cannot create a temporary directory for the package store")?;
            temporary.path()
        }
    };
    let bundler = crate::bundle::open_bundler(store_dir)?;
    let options = crate::build::BuildOptions {
        flow_name: cx.flow_name.map(str::to_string),
        ..Default::default()
    };
    let bundle = bundler
        .bundle(path, &options)
        .await
        .map_err(crate::bundle::problems)?;
    let artifact = crate::build::compile(cx.sandbox, bundle, path)
        .await
        .map_err(crate::bundle::problems)?;
    count_cache(cx.metrics, artifact.code.cached);
    let name = artifact.bundle.flow.clone();
    let exports = artifact.bundle.manifest.exports.clone();
    let sha256 = artifact.code.source_sha256.clone();
    start(
        cx,
        name,
        sha256,
        artifact.code,
        SourceOrigin::Known(settings.map(Box::new), exports),
        number,
        input,
    )
    .await
}

/// The HTTP source settings of a loaded flow config, with `$env` values taken from the
/// runner's environment.
pub fn config_source_settings(
    flow: &crate::config::LoadedFlow,
) -> Result<Option<SourceSettings>, String> {
    let mut sources = serde_json::Map::new();
    for step in &flow.sources {
        let package = match &step.code {
            crate::config::StepCode::Package { package, .. } => Value::String(package.clone()),
            _ => Value::Null,
        };
        let mut entry = serde_json::Map::new();
        entry.insert("package".into(), package);
        if let Some(config) = &step.config {
            entry.insert("config".into(), to_json(config));
        }
        for (key, value) in [("before", &step.before), ("next", &step.next)] {
            if let Some(value) = value {
                entry.insert(key.into(), value.clone());
            }
        }
        sources.insert(step.id.clone(), Value::Object(entry));
    }
    SourceSettings::from_sources(&Value::Object(sources), false)
}

/// A resolved config value as JSON, reading `$env` from the runner's environment. Inline code
/// and store references have no JSON form; they become `null`.
fn to_json(value: &crate::config::ConfigValue) -> Value {
    use crate::config::{ConfigValue, RuntimeRef, TemplatePart};
    let env = |name: &str, default: &Option<String>| {
        std::env::var(name)
            .ok()
            .or_else(|| default.clone())
            .unwrap_or_default()
    };
    match value {
        ConfigValue::Null => Value::Null,
        ConfigValue::Bool(b) => Value::Bool(*b),
        ConfigValue::Number(n) => Value::Number(n.clone()),
        ConfigValue::String(s) => Value::String(s.clone()),
        ConfigValue::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        ConfigValue::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        ConfigValue::Runtime(RuntimeRef::Env { name, default }) => {
            Value::String(env(name, default))
        }
        ConfigValue::Runtime(RuntimeRef::Secret { name }) => {
            Value::String(std::env::var(name).unwrap_or_default())
        }
        ConfigValue::Runtime(RuntimeRef::Template(parts)) => Value::String(
            parts
                .iter()
                .map(|part| match part {
                    TemplatePart::Text(text) => text.clone(),
                    TemplatePart::Env { name, default } => env(name, default),
                })
                .collect(),
        ),
        ConfigValue::Code(_) | ConfigValue::Store(_) => Value::Null,
    }
}

/// Reads the bundle's `sources()` export, or the default source when it has none.
async fn bundle_sources(flow: &crate::sandbox::Flow) -> anyhow::Result<Option<SourceSettings>> {
    match flow.call("sources", "null").await {
        Ok(text) => {
            let value: Value = serde_json::from_str(&text)
                .context("the bundle's sources() returned something that is not JSON")?;
            SourceSettings::from_sources(&value, true)
                .map_err(|e| anyhow::anyhow!("the bundle's sources() export: {e}"))
        }
        Err(CallError::Threw { message, .. }) if message == "flow has no export \"sources\"" => {
            Ok(Some(SourceSettings::defaults("http")))
        }
        Err(e) => Err(anyhow::anyhow!("the bundle's sources() export failed: {e}")),
    }
}

/// The flow's `process.env`: the runner's environment without its credentials, plus `--env`.
fn flow_env(extra: &[(String, String)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = std::env::vars()
        .filter(|(name, _)| {
            !HIDDEN_ENV.contains(&name.as_str()) && !name.starts_with("WALKEROS_PREVIEW_")
        })
        .collect();
    env.extend(extra.iter().cloned());
    env
}

/// Whether `path` looks like something `flowhost run` can serve in serve mode.
pub fn serve_file(input: &BundleInput) -> anyhow::Result<&Path> {
    match input {
        BundleInput::File(path) => Ok(path),
        BundleInput::Url(url) => bail!("serve mode serves a local file; BUNDLE is a URL ({url})"),
        BundleInput::Embedded => {
            bail!("serve mode serves a local file: set BUNDLE to the web bundle")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_by_extension_and_scheme() {
        let js = BundleInput::resolve(Some("flows/flow.mjs")).unwrap();
        assert!(js.is_javascript());
        assert_eq!(js.flow_name(), "flow");
        assert_eq!(js.config_source(), ConfigSource::Local);

        let config = BundleInput::resolve(Some("flow.json")).unwrap();
        assert!(!config.is_javascript());

        let url = BundleInput::resolve(Some("https://cdn.example.com/f/collect.js?v=3")).unwrap();
        assert!(url.is_javascript());
        assert_eq!(url.flow_name(), "collect");
        assert_eq!(url.config_source(), ConfigSource::Url);

        let blank = BundleInput::resolve(Some("  ")).unwrap();
        if DEFAULT_BUNDLES.iter().all(|p| !Path::new(p).is_file()) {
            assert_eq!(blank, BundleInput::Embedded);
            assert!(blank.is_javascript());
            assert_eq!(blank.flow_name(), "default");
        }
    }

    #[test]
    fn config_sources_give_the_express_settings() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/configs/valid/collect-paths.json");
        let flow = crate::config::load_flow_config(&path, None).unwrap();
        let settings = config_source_settings(&flow).unwrap().unwrap();
        assert_eq!(settings.id, "http");
        assert!(settings.route("/pixel").is_some());
        assert_eq!(settings.max_batch, 50);
        assert!(!settings.respond_first.post);
    }
}
