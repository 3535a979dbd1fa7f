//! Shared pieces of the integration tests: a real HTTP sink on 127.0.0.1 and a runner for the
//! real `flowhost` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use tokio::io::AsyncWriteExt;

/// What the sink has seen.
#[derive(Default)]
pub struct SinkLog {
    /// Bodies received, in arrival order.
    pub bodies: Mutex<Vec<String>>,
    /// Header `x-flow` of each request.
    pub flows: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    /// Most requests that were being handled at the same time.
    pub max_in_flight: AtomicUsize,
}

/// A sink server on a loopback port; it stops when the test's runtime ends.
pub struct Sink {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// What it received.
    pub log: Arc<SinkLog>,
}

#[derive(Clone)]
struct SinkState {
    log: Arc<SinkLog>,
    delay: Duration,
}

async fn collect(State(state): State<SinkState>, headers: HeaderMap, body: String) -> String {
    let now = state.log.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.log.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    let flow = headers
        .get("x-flow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    state.log.flows.lock().unwrap().push(flow);
    let count = {
        let mut bodies = state.log.bodies.lock().unwrap();
        bodies.push(body);
        bodies.len()
    };
    state.log.in_flight.fetch_sub(1, Ordering::SeqCst);
    format!("{{\"received\":{count}}}")
}

/// Starts a sink that answers `POST /collect` after `delay`.
pub async fn start_sink(delay: Duration) -> Sink {
    let log = Arc::new(SinkLog::default());
    let app = Router::new()
        .route("/collect", post(collect))
        .with_state(SinkState {
            log: log.clone(),
            delay,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Sink { url, log }
}

/// The registry the tests bundle flow configs from: `NPM_CONFIG_REGISTRY`, else what npm says.
#[allow(dead_code)]
pub fn registry() -> &'static str {
    static REGISTRY: OnceLock<String> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        if let Ok(registry) = std::env::var("NPM_CONFIG_REGISTRY")
            && !registry.is_empty()
        {
            return registry;
        }
        let output = std::process::Command::new("npm")
            .args(["config", "get", "registry"])
            .output()
            .expect("no registry configured and no npm CLI to ask; set NPM_CONFIG_REGISTRY");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    })
}

/// A test flow under `tests/flows/`.
pub fn flow(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/flows")
        .join(name)
}

/// An artifact cache shared by the tests of one build, so that the shim compiles once.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("flowhost-test-cache")
}

/// The output of one `flowhost` run.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout parsed as JSON lines.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }
}

/// Runs the real binary with `args` and `envs`, feeding `stdin`; it is killed if the test
/// gives up on it.
pub async fn flowhost(args: &[&str], envs: &[(&str, &str)], stdin: &str) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowhost"));
    command
        .args(args)
        .env_remove("CACHE_DIR")
        .env("FLOWHOST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("the flowhost binary starts");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    let writer = tokio::spawn(async move {
        let _ = input.write_all(stdin.as_bytes()).await;
    });
    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("flowhost finished within 300 s")
        .expect("flowhost output");
    let _ = writer.await;
    Run {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `flowhost exec <flow>` with `SINK_URL` set to `sink_url`, the shared artifact cache, and
/// outbound HTTP allowed to 127.0.0.1 only.
pub async fn exec_with_sink(flow: &Path, sink_url: &str, stdin: &str) -> Run {
    let cache = shared_cache();
    flowhost(
        &[
            "exec",
            flow.to_str().unwrap(),
            "--env",
            &format!("SINK_URL={sink_url}"),
        ],
        &[
            ("CACHE_DIR", cache.to_str().unwrap()),
            ("FLOWHOST_HTTP_ALLOW_HOSTS", "127.0.0.1"),
        ],
        stdin,
    )
    .await
}
