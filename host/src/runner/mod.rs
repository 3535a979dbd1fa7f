//! `flowhost run`: the long-running runner. It listens first (so `/health` answers while the
//! flow loads), loads the flow into a generation, serves it, reloads it on SIGHUP, and on
//! SIGTERM/SIGINT drains work in progress before stopping the flow.
//!
//! This module owns the lifecycle and the runner's own endpoints. The HTTP source contract is
//! in `intake`; running flows is the sandbox's. The control-plane client (config polling,
//! heartbeats) will install generations through the same [`generation::FlowSlot`].

pub mod endpoints;
pub mod generation;
pub mod idle;
pub mod load;
pub mod options;
pub mod serve;
pub mod server;
pub mod state;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::sandbox::{Sandbox, SandboxConfig};
use endpoints::App;
use generation::Generation;
use load::{BundleInput, LoadContext};
pub use options::RunArgs;
use options::{HttpLimits, Mode};
use state::{Readiness, RunnerState};

/// The signals the runner acts on.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Received {
    Stop(&'static str),
    Reload,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        let install = |kind| signal(kind).context("cannot install a signal handler");
        Ok(Self {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Received {
        tokio::select! {
            _ = self.term.recv() => Received::Stop("SIGTERM"),
            _ = self.int.recv() => Received::Stop("SIGINT"),
            _ = self.hup.recv() => Received::Reload,
        }
    }
}

/// Runs until SIGTERM or SIGINT. An error means the runner could not start or its flow could
/// not be loaded.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let port = options::parse_port(args.port.as_deref())?;
    let mode = Mode::parse(args.mode.as_deref());
    let limits = HttpLimits::from_env().map_err(anyhow::Error::msg)?;
    let input = BundleInput::resolve(args.bundle.as_deref())?;
    let mut signals = Signals::install()?;

    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(RunnerState::new(mode, metrics.clone()));
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        mode = mode.as_str(),
        instance = %state.instance_id,
        "flowhost runner starting"
    );

    // Listen before loading, so that /health answers and /ready says not_ready meanwhile.
    let served = match mode {
        Mode::Serve => Some(serve::ServedFile::new(
            load::serve_file(&input)?,
            &args.serve_path,
            &args.serve_name,
        )),
        Mode::Collect => None,
    };
    let listener = TcpListener::bind((args.host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {}:{port}", args.host))?;
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;
    state.port.store(address.port(), Ordering::Relaxed);
    tracing::info!(address = %address, "HTTP server listening");
    let app = Arc::new(App {
        state: state.clone(),
        served,
    });
    let server = server::start(listener, app.clone(), &limits);

    let runner = match mode {
        Mode::Serve => {
            if let Some(served) = &app.served {
                tracing::info!(file = %served.file().display(), url = served.url_path(), "Serving the bundle");
            }
            state.set_readiness(Readiness::Ready);
            None
        }
        Mode::Collect => {
            let loading = Runner::start(state.clone(), input, &args, &limits);
            let started = tokio::select! {
                started = loading => started,
                received = wait_for_stop(&mut signals) => {
                    shutdown(&state, server, &limits, received).await;
                    return Ok(());
                }
            };
            match started {
                Ok(runner) => Some(runner),
                Err(e) => {
                    let reason = format!("{e:#}");
                    tracing::error!(error = %reason, "Flow failed to load");
                    state.set_readiness(Readiness::Failed(reason));
                    shutdown(&state, server, &limits, "load failure").await;
                    return Err(e);
                }
            }
        }
    };
    tracing::info!(port = address.port(), "Flow running");
    let _trimmer = AbortOnDrop(idle::spawn(metrics.clone()));

    loop {
        match signals.next().await {
            Received::Reload => match &runner {
                Some(runner) => runner.reload().await,
                None => tracing::info!("SIGHUP ignored: serve mode reads the file on change"),
            },
            Received::Stop(name) => {
                shutdown(&state, server, &limits, name).await;
                return Ok(());
            }
        }
    }
}

/// Aborts a background task when the runner returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn wait_for_stop(signals: &mut Signals) -> &'static str {
    loop {
        if let Received::Stop(name) = signals.next().await {
            return name;
        }
    }
}

/// Collect mode: the sandbox, the input and how to load (and reload) generations from it.
struct Runner {
    state: Arc<RunnerState>,
    sandbox: Arc<Sandbox>,
    input: BundleInput,
    env: Vec<(String, String)>,
    flow_name: Option<String>,
    cache_dir: Option<std::path::PathBuf>,
    body_timeout: Duration,
    drain_timeout: Duration,
}

impl Runner {
    /// Builds the sandbox and installs the first generation.
    async fn start(
        state: Arc<RunnerState>,
        input: BundleInput,
        args: &RunArgs,
        limits: &HttpLimits,
    ) -> anyhow::Result<Self> {
        let config = SandboxConfig::from_env().context("invalid sandbox setting")?;
        let cache_dir = if args.no_cache {
            None
        } else {
            args.cache_dir
                .clone()
                .or_else(crate::exec::default_cache_dir)
        };
        let cache = crate::exec::open_cache(cache_dir.as_deref());
        let sandbox = Sandbox::new(config, cache).await?;
        let runner = Self {
            state,
            sandbox,
            input,
            env: args.env.clone(),
            flow_name: args
                .flow_name
                .clone()
                .or_else(|| std::env::var("WALKEROS_FLOW_NAME").ok())
                .or_else(|| std::env::var("FLOW_NAME").ok())
                .filter(|name| !name.is_empty()),
            cache_dir,
            body_timeout: limits.body_timeout,
            drain_timeout: limits.drain_timeout,
        };
        tracing::info!(bundle = %runner.input, "Loading the flow");
        let first = runner.load(1).await?;
        runner.state.flow.install(Arc::new(first));
        runner.state.set_readiness(Readiness::Ready);
        Ok(runner)
    }

    async fn load(&self, number: u64) -> anyhow::Result<Generation> {
        let cx = LoadContext {
            sandbox: &self.sandbox,
            metrics: &self.state.metrics,
            env: &self.env,
            flow_name: self.flow_name.as_deref(),
            body_timeout: self.body_timeout,
            cache_dir: self.cache_dir.as_deref(),
        };
        load::load_generation(&self.input, number, &cx).await
    }

    /// Loads the input again and swaps it in; the old generation keeps serving the requests it
    /// has and is stopped once they are done. A failed load keeps the current flow.
    async fn reload(&self) {
        let number = self.state.flow.current().map_or(1, |g| g.number + 1);
        tracing::info!(bundle = %self.input, generation = number, "Reloading the flow");
        let next = match self.load(number).await {
            Ok(next) => Arc::new(next),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "Reload failed, keeping the current flow");
                return;
            }
        };
        let old = self.state.flow.install(next);
        self.state.metrics.swaps.fetch_add(1, Ordering::Relaxed);
        tracing::info!(generation = number, "Flow swapped");
        if let Some(old) = old {
            let metrics = self.state.metrics.clone();
            let timeout = self.drain_timeout;
            tokio::spawn(async move { old.retire(timeout, &metrics).await });
        }
    }
}

/// Stops the runner: refuse new connections, let work in progress finish (bounded by the drain
/// timeout), close the connections, stop the flow.
async fn shutdown(
    state: &Arc<RunnerState>,
    server: server::ServerControl,
    limits: &HttpLimits,
    reason: &str,
) {
    tracing::info!(reason, "Shutting down");
    state.set_readiness(Readiness::Draining);
    let _ = server.stop_accepting.send(true);

    // Requests on open connections are still answered (each response asks the client to
    // close); the flow keeps delivering what was accepted.
    let deadline = Instant::now() + limits.drain_timeout;
    let current = state.flow.current();
    let drained = tokio::time::timeout_at(deadline, async {
        state.requests.wait_idle().await;
        if let Some(generation) = &current {
            generation.wait_idle().await;
        }
    })
    .await
    .is_ok();
    if !drained {
        let (requests, deliveries) = current.as_ref().map_or((0, 0), |g| g.in_flight());
        tracing::warn!(
            requests = state.requests.count().max(requests),
            deliveries,
            "Drain timed out; stopping with work in progress"
        );
    }

    // Idle connections close now, busy ones after their current response.
    let _ = server.close_connections.send(true);
    let grace = deadline.max(Instant::now() + Duration::from_secs(1));
    let _ = tokio::time::timeout_at(grace, server.connections.wait_idle()).await;

    if let Some(generation) = state.flow.take() {
        generation
            .retire(
                deadline.saturating_duration_since(Instant::now()),
                &state.metrics,
            )
            .await;
    }
    tracing::info!("Shutdown complete");
}
