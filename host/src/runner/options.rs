//! `flowhost run` settings: the original runner's environment variables (`BUNDLE`, `PORT`,
//! `MODE`, `CACHE_DIR`, `HOST`, `SERVE_PATH`, `SERVE_NAME`, `FLOW_NAME`), each also a flag, and
//! the HTTP server's limits (`FLOWHOST_HTTP_*`, `FLOWHOST_DRAIN_TIMEOUT_MS`).

use std::path::PathBuf;
use std::time::Duration;

/// Where the original image keeps its bundle (4.x name first, then the 2.x/3.x name).
pub const DEFAULT_BUNDLES: [&str; 2] = ["/app/flow/flow.mjs", "/app/flow/bundle.mjs"];

/// The `flowhost run` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The flow: an ES module bundle (.mjs/.js/.cjs), a flow config (JSON), or an http(s) URL of
    /// either. Default: /app/flow/flow.mjs, else /app/flow/bundle.mjs, else the embedded default
    /// flow.
    #[arg(env = "BUNDLE", value_name = "BUNDLE")]
    pub bundle: Option<String>,
    /// Port to listen on (1-65535; 0 picks a free port and logs it).
    #[arg(long, env = "PORT", value_name = "PORT")]
    pub port: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// `collect` (run the flow and serve its HTTP source) or `serve` (serve BUNDLE as a file).
    #[arg(long, env = "MODE", value_name = "MODE")]
    pub mode: Option<String>,
    /// Where compiled artifacts are kept between runs.
    #[arg(long, env = "CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Run without the artifact cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// The flow to run when a config has several (default: `WALKEROS_FLOW_NAME`, then
    /// `FLOW_NAME`).
    #[arg(long = "flow", value_name = "NAME")]
    pub flow_name: Option<String>,
    /// Serve mode: URL directory of the served file.
    #[arg(long, env = "SERVE_PATH", default_value = "")]
    pub serve_path: String,
    /// Serve mode: file name in the URL.
    #[arg(long, env = "SERVE_NAME", default_value = "walker.js")]
    pub serve_name: String,
    /// Set a variable in the flow's `process.env` (repeatable); the flow also sees the
    /// runner's environment, minus its credentials.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
}

/// Parses `NAME=VALUE`.
pub fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

/// What the runner does with its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run the flow and serve its HTTP source.
    Collect,
    /// Serve the bundle file (a web bundle) over HTTP.
    Serve,
}

impl Mode {
    /// The name `/status` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Collect => "collect",
            Self::Serve => "serve",
        }
    }

    /// `serve` is serve mode; anything else is collect mode, as in the original runner. An
    /// unknown value is reported so that a typo does not go unnoticed.
    pub fn parse(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("serve") => Self::Serve,
            None | Some("") => Self::Collect,
            Some(v) if v.eq_ignore_ascii_case("collect") => Self::Collect,
            Some(other) => {
                tracing::warn!(
                    mode = other,
                    "MODE is neither collect nor serve; running in collect mode"
                );
                Self::Collect
            }
        }
    }
}

/// `PORT` did not hold a port number.
#[derive(Debug, thiserror::Error)]
#[error(
    "Invalid port: {0}\n   Port must be an integer between 1 and 65535\n   Example: --port 8080"
)]
pub struct InvalidPort(pub String);

/// Parses `PORT` the way the original runner validates it; 0 (any free port) is accepted too.
pub fn parse_port(value: Option<&str>) -> Result<u16, InvalidPort> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(8080);
    };
    text.parse::<u16>()
        .map_err(|_| InvalidPort(text.to_string()))
}

/// The HTTP server's limits, each with a `FLOWHOST_*` override.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// How long a connection may sit idle between requests, and how long a client may take to
    /// send a request's headers (slow clients are cut off at this point). Also announced as
    /// `Keep-Alive: timeout=<s>`. 5 s, as Node's `keepAliveTimeout`.
    pub idle_timeout: Duration,
    /// How long a client may take to send a request body.
    pub body_timeout: Duration,
    /// Connections served at once; past it new connections are closed at once. Each idle
    /// connection costs a file descriptor and a few KiB.
    pub max_connections: usize,
    /// Largest request head (request line and headers); larger ones get 431. 16 KiB, as Node.
    pub max_header_bytes: usize,
    /// How long shutdown waits for requests and deliveries in progress before stopping the
    /// flow anyway.
    pub drain_timeout: Duration,
}

impl HttpLimits {
    /// Defaults overridden by the environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], reading variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |var: &str, default: u64| -> Result<u64, String> {
            match get(var).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!(
                        "{var}={v:?} is not valid: expected a whole number above 0"
                    )),
                },
            }
        };
        Ok(Self {
            idle_timeout: Duration::from_millis(number("FLOWHOST_HTTP_IDLE_TIMEOUT_MS", 5_000)?),
            body_timeout: Duration::from_millis(number(
                "FLOWHOST_HTTP_BODY_TIMEOUT_MS",
                crate::intake::DEFAULT_BODY_TIMEOUT.as_millis() as u64,
            )?),
            max_connections: number("FLOWHOST_HTTP_MAX_CONNECTIONS", default_max_connections())?
                as usize,
            max_header_bytes: number("FLOWHOST_HTTP_MAX_HEADER_BYTES", 16 * 1024)? as usize,
            drain_timeout: Duration::from_millis(number("FLOWHOST_DRAIN_TIMEOUT_MS", 10_000)?),
        })
    }
}

/// The open-file limit minus a reserve for the cache, outbound requests and logs, so that the
/// server refuses connections itself before `accept` starts failing.
fn default_max_connections() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    };
    soft.saturating_sub(256).clamp(64, 65_536)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_validation_uses_the_original_message() {
        assert_eq!(parse_port(None).unwrap(), 8080);
        assert_eq!(parse_port(Some("")).unwrap(), 8080);
        assert_eq!(parse_port(Some("9000")).unwrap(), 9000);
        assert_eq!(parse_port(Some("0")).unwrap(), 0);
        let err = parse_port(Some("70000")).unwrap_err().to_string();
        assert_eq!(
            err,
            "Invalid port: 70000\n   Port must be an integer between 1 and 65535\n   Example: --port 8080"
        );
        assert!(parse_port(Some("http")).is_err());
        assert!(parse_port(Some("-1")).is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(Mode::parse(None), Mode::Collect);
        assert_eq!(Mode::parse(Some("serve")), Mode::Serve);
        assert_eq!(Mode::parse(Some("SERVE")), Mode::Serve);
        assert_eq!(Mode::parse(Some("srve")), Mode::Collect);
    }

    #[test]
    fn limits_from_the_environment() {
        let limits = HttpLimits::from_lookup(|name| {
            (name == "FLOWHOST_HTTP_IDLE_TIMEOUT_MS").then(|| "2000".to_string())
        })
        .unwrap();
        assert_eq!(limits.idle_timeout, Duration::from_secs(2));
        assert_eq!(limits.max_header_bytes, 16 * 1024);
        let err = HttpLimits::from_lookup(|name| {
            (name == "FLOWHOST_DRAIN_TIMEOUT_MS").then(|| "soon".to_string())
        })
        .unwrap_err();
        assert!(err.contains("FLOWHOST_DRAIN_TIMEOUT_MS"), "{err}");
    }
}
