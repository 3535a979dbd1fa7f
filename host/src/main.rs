//! The `flowhost` command line.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use flowhost::build::BuildOptions;
use flowhost::bundle::{self, BundleCommand, Validation};
use flowhost::exec::{self, ExecOptions};

/// Runs walkerOS event flows, each inside a WebAssembly sandbox.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Push events (JSON lines on stdin) through a flow and print each result as a JSON line.
    ///
    /// Exit status: 0 when every event succeeded, 3 when some failed (their lines say why),
    /// 1 when the flow could not run at all.
    Exec {
        /// The flow: a bundle (`.mjs`, `.js`, `.cjs`: an ES module whose exported functions
        /// are its handlers) or a flow config, which is bundled first. Without it, an
        /// embedded default flow runs.
        input: Option<PathBuf>,
        /// The export each event is passed to.
        #[arg(long, default_value = "push")]
        export: String,
        /// Set a variable in the flow's `process.env` (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env_pair)]
        env: Vec<(String, String)>,
        #[command(flatten)]
        build: BuildArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Serve a flow over HTTP, as the walkerOS runner image does: its HTTP source in collect
    /// mode, or the bundle file in serve mode, plus /health, /ready, /status and /metrics.
    ///
    /// Stops on SIGTERM or SIGINT after draining requests in progress; reloads the flow on
    /// SIGHUP. Exit status: 0 after a shutdown, 1 when it could not start or load the flow.
    Run(flowhost::runner::RunArgs),
    /// Check a flow config: print every problem on its own line and exit 1, or exit 0.
    Validate {
        /// The flow config.
        config: PathBuf,
        /// The flow to check in a config with several (default: `WALKEROS_FLOW_NAME`, then
        /// `FLOW_NAME`).
        #[arg(long = "flow")]
        flow: Option<String>,
        /// Also require every `$env.NAME` without a default to be set, in this process's
        /// environment or by `--env`.
        #[arg(long)]
        check_env: bool,
        /// A variable for `--check-env` (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env_pair)]
        env: Vec<(String, String)>,
    },
    /// Bundle a flow config into `<dir>/flow.mjs`, its manifest `flow.json` and its bytecode
    /// `flow.qjsbc`, and print their sizes and the stage timings.
    Bundle {
        /// The flow config.
        config: PathBuf,
        /// The output directory.
        #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
        out_dir: PathBuf,
        #[command(flatten)]
        build: BuildArgs,
        /// Where the package store and compiled artifacts are kept between runs.
        #[arg(long, env = "CACHE_DIR")]
        cache_dir: Option<PathBuf>,
    },
}

/// How a flow config is bundled.
#[derive(Debug, Args)]
struct BuildArgs {
    /// The flow to use in a config with several (default: `WALKEROS_FLOW_NAME`, then
    /// `FLOW_NAME`).
    #[arg(long = "flow")]
    flow: Option<String>,
    /// Do not contact the npm registry: packages and esbuild come from the local store, which
    /// an earlier online build filled.
    #[arg(long)]
    offline: bool,
    /// Run esbuild even when the bundle cache has this bundle.
    #[arg(long)]
    no_bundle_cache: bool,
}

impl BuildArgs {
    fn options(self) -> BuildOptions {
        BuildOptions {
            flow_name: bundle::flow_name(self.flow),
            offline: self.offline,
            skip_bundle_cache: self.no_bundle_cache,
        }
    }
}

#[derive(Debug, Args)]
struct CacheArgs {
    /// Where compiled artifacts and the package store are kept between runs.
    #[arg(long, env = "CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Run without the artifact cache (a flow config is bundled in a temporary store).
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    flowhost::telemetry::init();
    match cli.command {
        Command::Validate {
            config,
            flow,
            check_env,
            env,
        } => validate(config, flow, check_env, env),
        Command::Exec {
            input,
            export,
            env,
            build,
            cache,
        } => {
            let cache_dir = if cache.no_cache {
                None
            } else {
                cache.cache_dir.or_else(exec::default_cache_dir)
            };
            let options = ExecOptions {
                input,
                build: build.options(),
                export,
                env: env.into_iter().collect::<BTreeMap<_, _>>(),
                cache_dir,
            };
            block_on(async move {
                match exec::run(options).await {
                    Ok(summary) if summary.failed == 0 => ExitCode::SUCCESS,
                    Ok(summary) => {
                        eprintln!("{} of {} events failed", summary.failed, summary.events);
                        ExitCode::from(3)
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::from(1)
                    }
                }
            })
        }
        Command::Run(args) => {
            flowhost::runner::idle::restart_without_thread_cache();
            block_on(async move {
                match flowhost::runner::run(args).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::from(1)
                    }
                }
            })
        }
        Command::Bundle {
            config,
            out_dir,
            build,
            cache_dir,
        } => {
            let Some(cache_dir) = cache_dir.or_else(exec::default_cache_dir) else {
                eprintln!("error: no cache directory: set CACHE_DIR or --cache-dir");
                return ExitCode::from(1);
            };
            let command = BundleCommand {
                config,
                out_dir,
                options: build.options(),
                cache_dir,
            };
            block_on(async move {
                match bundle::run(command).await {
                    Ok(report) => {
                        print!("{report}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::from(1)
                    }
                }
            })
        }
    }
}

/// Runs a command on a multi-threaded runtime.
fn block_on(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

fn validate(
    config: PathBuf,
    flow: Option<String>,
    check_env: bool,
    env: Vec<(String, String)>,
) -> ExitCode {
    let flow = bundle::flow_name(flow);
    let environment: Option<HashMap<String, String>> = check_env.then(|| {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        vars.extend(env);
        vars
    });
    match bundle::validate(&config, flow.as_deref(), environment.as_ref()) {
        Validation::Valid(name) => {
            println!("{}: flow \"{name}\" is valid", config.display());
            ExitCode::SUCCESS
        }
        Validation::Invalid(problems) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            ExitCode::from(1)
        }
    }
}
