//! The `flowhost` command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
        /// The flow bundle: an ES module whose exported functions are its handlers. Without
        /// it, an embedded default flow runs.
        bundle: Option<PathBuf>,
        /// The export each event is passed to.
        #[arg(long, default_value = "push")]
        export: String,
        /// Set a variable in the flow's `process.env` (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env_pair)]
        env: Vec<(String, String)>,
        /// Where compiled artifacts are kept between runs.
        #[arg(long, env = "CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// Run without the artifact cache.
        #[arg(long, conflicts_with = "cache_dir")]
        no_cache: bool,
    },
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Exec {
                bundle,
                export,
                env,
                cache_dir,
                no_cache,
            } => {
                let cache_dir = if no_cache {
                    None
                } else {
                    cache_dir.or_else(exec::default_cache_dir)
                };
                let options = ExecOptions {
                    bundle,
                    export,
                    env: env.into_iter().collect::<BTreeMap<_, _>>(),
                    cache_dir,
                };
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
            }
        }
    })
}
