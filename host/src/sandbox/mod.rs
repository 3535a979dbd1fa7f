//! The WebAssembly sandbox: one wasmtime `Engine` for the process, the guest shim compiled
//! once, and the flows that run as instances of it.
//!
//! This module owns compilation (the shim's snapshot and machine code, each flow's bytecode),
//! the engine's limits and the per-flow instance drivers in [`flow`]. It does not know where a
//! flow's source comes from (the build pipeline) or how events arrive (the CLI, HTTP intake).

pub mod config;
pub mod flow;
pub mod guest;
pub mod imports;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, Store};

use crate::cache::{ArtifactCache, Compat};
pub use config::SandboxConfig;
pub use flow::{CallError, Flow, FlowSpec};
use guest::{Guest, GuestLimits};
use imports::GuestState;

/// The guest shim as built by `host/build.rs`: a Javy plugin for wasm32-wasip1, not yet
/// pre-initialised.
pub const SHIM_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flowhost_shim.wasm"));

/// The wasmtime release this host is built against; compiled artifacts only load into it.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Instances set aside for build work (snapshots, bytecode compiles) beside the flows' own.
const BUILD_SLOTS: u32 = 4;

/// CPU time allowed to build steps that run guest code (the shim's start-up, compiles).
const BUILD_DEADLINE: Duration = Duration::from_secs(60);

/// Errors of the sandbox's set-up and build steps.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The engine or the linker could not be configured.
    #[error("sandbox set-up failed: {0}")]
    Setup(String),
    /// The guest shim could not be initialised or compiled.
    #[error("the guest shim could not be prepared: {0}")]
    Shim(String),
    /// A flow's JavaScript does not compile.
    #[error("the flow's JavaScript does not compile: {0}")]
    Compile(String),
    /// A guest instance failed while doing build or start-up work.
    #[error(transparent)]
    Guest(#[from] guest::GuestError),
    /// A flow failed to start.
    #[error("flow {flow} failed to start: {message}")]
    Start {
        /// The flow's name.
        flow: String,
        /// What went wrong.
        message: String,
    },
}

/// A flow's compiled form: QuickJS bytecode for the shim that produced it.
#[derive(Debug)]
pub struct FlowCode {
    /// The bytecode.
    pub bytecode: Vec<u8>,
    /// SHA-256 of the JavaScript it came from, hex.
    pub source_sha256: String,
    /// Whether it came from the artifact cache.
    pub cached: bool,
}

/// Bumps the engine's epoch at a fixed interval until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine, tick: Duration) -> Result<Self, SandboxError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let engine = engine.clone();
        std::thread::Builder::new()
            .name("flowhost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| SandboxError::Setup(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The process-wide sandbox: engine, linker, the compiled shim and shared clients.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<GuestState>,
    shim: InstancePre<GuestState>,
    shim_sha256: [u8; 32],
    config: SandboxConfig,
    cache: Option<ArtifactCache>,
    http: reqwest::Client,
    _ticker: EpochTicker,
}

impl Sandbox {
    /// Builds the engine and prepares the shim, from the artifact cache when it has a usable
    /// entry (no compilation) or by snapshotting and compiling it (a few seconds) otherwise.
    pub async fn new(
        config: SandboxConfig,
        cache: Option<ArtifactCache>,
    ) -> Result<Arc<Self>, SandboxError> {
        let engine = build_engine(&config)?;
        let ticker = EpochTicker::start(&engine, config.epoch_tick)?;

        let mut linker = Linker::new(&engine);
        imports::add_host_functions(&mut linker)?;
        imports::add_wasi_functions(&mut linker, &engine, SHIM_WASM)?;

        let shim_sha256: [u8; 32] = Sha256::digest(SHIM_WASM).into();
        let module = load_shim(&engine, &linker, cache.as_ref(), &shim_sha256).await?;
        let shim = linker
            .instantiate_pre(&module)
            .map_err(|e| SandboxError::Shim(format!("linking the shim: {e}")))?;

        let http = crate::outbound::Outbound::default_client(&config.outbound)
            .map_err(|e| SandboxError::Setup(format!("cannot build the HTTP client: {e}")))?;
        // Check the outbound policy (host patterns) once, at start-up, not per flow.
        crate::outbound::Outbound::new(config.outbound.clone(), http.clone())
            .map_err(|e| SandboxError::Setup(format!("outbound HTTP policy: {e}")))?;
        Ok(Arc::new(Self {
            engine,
            linker,
            shim,
            shim_sha256,
            config,
            cache,
            http,
            _ticker: ticker,
        }))
    }

    /// The limits every flow of this sandbox runs under.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The engine, for benchmarks and tests.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The linker with every host import; tests link hand-written guests with it.
    pub fn linker(&self) -> &Linker<GuestState> {
        &self.linker
    }

    /// The shim's pre-linked instance template.
    pub fn instance_pre(&self) -> &InstancePre<GuestState> {
        &self.shim
    }

    /// The limits of one flow instance.
    pub fn guest_limits(&self) -> GuestLimits {
        GuestLimits {
            memory_bytes: self.config.memory_limit_bytes,
            deadline_ticks: self.config.deadline_ticks(),
            deadline_ms: self.config.cpu_deadline.as_millis() as u64,
        }
    }

    /// Compiles a flow's ES module to bytecode, or takes it from the artifact cache.
    pub async fn compile_flow(&self, source: &str) -> Result<Arc<FlowCode>, SandboxError> {
        let source_sha256 = hex::encode(Sha256::digest(source.as_bytes()));
        // Bytecode is only valid for the shim build that made it, so the key covers both.
        let mut key = Sha256::new();
        key.update(self.shim_sha256);
        key.update(source.as_bytes());
        let key: [u8; 32] = key.finalize().into();
        let compat = self.compat();
        if let Some(cache) = &self.cache {
            match cache.lookup("flow", &key, &compat) {
                Ok(Some(hit)) => match std::fs::read(&hit.path) {
                    Ok(bytecode) => {
                        tracing::debug!(sha256 = %source_sha256, "Flow bytecode loaded from the artifact cache");
                        return Ok(Arc::new(FlowCode {
                            bytecode,
                            source_sha256,
                            cached: true,
                        }));
                    }
                    Err(e) => {
                        tracing::warn!(path = %hit.path.display(), error = %e, "Cannot read a cached flow; recompiling")
                    }
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "Artifact cache lookup failed; recompiling"),
            }
        }

        let started = Instant::now();
        let limits = GuestLimits {
            deadline_ticks: ticks_for(BUILD_DEADLINE, self.config.epoch_tick),
            deadline_ms: BUILD_DEADLINE.as_millis() as u64,
            ..self.guest_limits()
        };
        let mut guest = Guest::instantiate(&self.shim, "build".into(), limits).await?;
        let bytecode = guest
            .compile(source)
            .await?
            .map_err(SandboxError::Compile)?;
        tracing::info!(
            sha256 = %source_sha256,
            bytes = bytecode.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "Flow compiled to bytecode"
        );
        if let Some(cache) = &self.cache
            && let Err(e) = cache.store("flow", &key, &compat, &bytecode)
        {
            tracing::warn!(
                error = %e,
                "Cannot cache the flow's bytecode; it will be recompiled next time"
            );
        }
        Ok(Arc::new(FlowCode {
            bytecode,
            source_sha256,
            cached: false,
        }))
    }

    /// Starts a flow: its instances load the code and are ready for calls when this returns.
    pub async fn start_flow(self: &Arc<Self>, spec: FlowSpec) -> Result<Flow, SandboxError> {
        Flow::start(self.clone(), spec).await
    }

    fn compat(&self) -> Compat {
        compat_for(&self.engine)
    }

    pub(crate) fn http_client(&self) -> &reqwest::Client {
        &self.http
    }
}

fn compat_for(engine: &Engine) -> Compat {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    Compat {
        flowhost_version: env!("CARGO_PKG_VERSION").to_string(),
        wasmtime_version: WASMTIME_VERSION.to_string(),
        engine_hash: format!("{:016x}", hasher.finish()),
    }
}

fn ticks_for(deadline: Duration, tick: Duration) -> u64 {
    (deadline.as_micros().div_ceil(tick.as_micros().max(1)) as u64).max(1)
}

/// `FLOWHOST_WASM_PROFILER=perfmap|jitdump` makes guest machine code visible to `perf`.
fn profiling_strategy() -> Option<wasmtime::ProfilingStrategy> {
    let value = std::env::var("FLOWHOST_WASM_PROFILER").ok()?;
    match value.as_str() {
        "perfmap" => Some(wasmtime::ProfilingStrategy::PerfMap),
        "jitdump" => Some(wasmtime::ProfilingStrategy::JitDump),
        "" | "none" => None,
        other => {
            tracing::warn!(
                value = other,
                "FLOWHOST_WASM_PROFILER is not perfmap, jitdump or none; profiling stays off"
            );
            None
        }
    }
}

/// The engine every module of this process is compiled for and run in.
fn build_engine(config: &SandboxConfig) -> Result<Engine, SandboxError> {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    // One slot per live instance plus the build slots; each memory slot reserves address space
    // for its guard regions but commits nothing until the guest touches it.
    let slots = config.max_instances.saturating_add(BUILD_SLOTS);
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_stacks(slots)
        // The hard ceiling; `StoreLimits` turns growth past the flow's limit into a failed
        // `memory.grow`, which QuickJS reports as a JavaScript out-of-memory error.
        .max_memory_size(config.memory_limit_bytes);

    let mut wasm = wasmtime::Config::new();
    wasm.epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        .parallel_compilation(true)
        // QuickJS recurses on deep objects; 1 MiB of wasm stack inside a 2 MiB fiber stack.
        .max_wasm_stack(1 << 20)
        .async_stack_size(2 << 20);
    if let Some(strategy) = profiling_strategy() {
        wasm.profiler(strategy);
    }
    Engine::new(&wasm).map_err(|e| SandboxError::Setup(format!("wasmtime engine: {e}")))
}

/// Loads the shim's machine code from the cache, or snapshots and compiles it.
async fn load_shim(
    engine: &Engine,
    linker: &Linker<GuestState>,
    cache: Option<&ArtifactCache>,
    shim_sha256: &[u8; 32],
) -> Result<Module, SandboxError> {
    let compat = compat_for(engine);
    if let Some(cache) = cache {
        let started = Instant::now();
        match cache.lookup("shim", shim_sha256, &compat) {
            Ok(Some(hit)) => {
                // SAFETY: the file is machine code this process wrote into a cache directory
                // it owns, and its checksum was verified by `lookup` just now.
                match unsafe { Module::deserialize_file(engine, &hit.path) } {
                    Ok(module) => {
                        tracing::info!(
                            path = %hit.path.display(),
                            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                            "Guest shim loaded from the artifact cache; compilation skipped"
                        );
                        return Ok(module);
                    }
                    Err(e) => tracing::warn!(
                        path = %hit.path.display(),
                        error = %e,
                        "Cached guest shim does not load; rebuilding it"
                    ),
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Artifact cache lookup failed; rebuilding the shim")
            }
        }
    }

    // Snapshot the shim after its runtime start-up so that instances begin with QuickJS and the
    // JavaScript prelude already initialised.
    let started = Instant::now();
    let mut store = Store::new(engine, GuestState::new("build".into(), usize::MAX));
    guest::arm_deadlines(&mut store);
    store.data_mut().ticks_left = ticks_for(BUILD_DEADLINE, Duration::from_millis(10));
    store.set_epoch_deadline(1);
    let initialised = wasmtime_wizer::Wizer::new()
        .init_func("initialize-runtime")
        .keep_init_func(false)
        .run(&mut store, SHIM_WASM, async |store, module| {
            linker.instantiate_async(store, module).await
        })
        .await
        .map_err(|e| SandboxError::Shim(format!("snapshotting the runtime: {e:#}")))?;
    let snapshot_ms = started.elapsed().as_secs_f64() * 1000.0;

    let started = Instant::now();
    let engine_for_compile = engine.clone();
    let compiled =
        tokio::task::spawn_blocking(move || engine_for_compile.precompile_module(&initialised))
            .await
            .map_err(|e| SandboxError::Shim(format!("compiler task failed: {e}")))?
            .map_err(|e| SandboxError::Shim(format!("compiling: {e:#}")))?;
    tracing::info!(
        snapshot_ms,
        compile_ms = started.elapsed().as_secs_f64() * 1000.0,
        bytes = compiled.len(),
        "Guest shim compiled"
    );

    if let Some(cache) = cache {
        match cache.store("shim", shim_sha256, &compat, &compiled) {
            Ok(path) => {
                // Load through the file so the code pages are shared with later processes.
                // SAFETY: written by this process a moment ago into its own cache directory.
                if let Ok(module) = unsafe { Module::deserialize_file(engine, &path) } {
                    return Ok(module);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot cache the compiled shim; the next start compiles again")
            }
        }
    }
    // SAFETY: the bytes were produced by `precompile_module` of this very engine.
    unsafe { Module::deserialize(engine, &compiled) }
        .map_err(|e| SandboxError::Shim(format!("loading compiled code: {e:#}")))
}
