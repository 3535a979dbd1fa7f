//! Guest cost of the walkerOS collector path, guest memory over 100,000 events, and native
//! against JavaScript hashing.
//!
//! - `noop/push_raw`: one event through the noop flow (`tests/configs/valid/collect-noop.json`,
//!   bundled by flowhost: collector 4.2.1 and an inline destination) on a live instance, called
//!   directly: the guest's own work per event (the call, the collector, the completion).
//! - `noop/push_flow`: the same through the flow's driver task (channels included).
//! - `api/push_flow`: the api flow (`collect-api.json`: mapping, then `sendServer` over the
//!   guest's `node:http` to a sink on 127.0.0.1), the whole round trip per event.
//! - `hash/native`, `hash/javascript`: 100 SHA-256 digests of a 900-byte event per call
//!   (`benches/flows/hashing.mjs`).
//!
//! Before the timed benches it pushes 100,000 events through the noop flow, the api flow and
//! `benches/flows/leaky.mjs` (timers and promises left behind on every push) and prints the
//! instance's memory as it goes. The first run fills the package store from the registry named
//! by `NPM_CONFIG_REGISTRY` (else `npm config get registry`). Run with
//! `cargo bench -p flowhost --bench collector`; pin it with `taskset -c 1` to compare runs.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use flowhost::build::{BuildOptions, Bundler};
use flowhost::cache::ArtifactCache;
use flowhost::sandbox::guest::Guest;
use flowhost::sandbox::{Flow, FlowCode, FlowSpec, Sandbox, SandboxConfig};
use futures::StreamExt;
use support::{npm_config, start_sink};

/// Events pushed for the memory figures; `FLOWHOST_BENCH_EVENTS` overrides it.
const MEMORY_EVENTS: usize = 100_000;

fn memory_events() -> usize {
    std::env::var("FLOWHOST_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MEMORY_EVENTS)
}

/// Calls in flight while pushing them, as an HTTP intake under load would have.
const MEMORY_CONCURRENCY: usize = 32;

fn workspace(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn event(name: &str) -> String {
    let text = std::fs::read_to_string(workspace(&format!("tests/events/{name}"))).unwrap();
    serde_json::from_str::<serde_json::Value>(&text)
        .unwrap()
        .to_string()
}

async fn start(sandbox: &Arc<Sandbox>, name: &str, code: Arc<FlowCode>, sink: &str) -> Flow {
    let spec = FlowSpec {
        name: name.into(),
        code,
        env: [("SINK_URL".to_string(), sink.to_string())].into(),
        config: serde_json::Value::Null,
        outbound: None,
    };
    sandbox.start_flow(spec).await.unwrap()
}

/// `memoryBytes`, `heapBytes` and `timers` of the flow's first instance.
async fn memory(flow: &Flow) -> (u64, u64, u64) {
    let status = flow.status().await.remove(0).unwrap_or_default();
    (
        status["memoryBytes"].as_u64().unwrap_or(0),
        status["heapBytes"].as_u64().unwrap_or(0),
        status["timers"].as_u64().unwrap_or(0),
    )
}

/// Pushes [`memory_events`] events through `flow` and prints its memory at every quarter.
async fn print_memory_over_events(label: &str, flow: &Flow, event: &str) {
    let (start, heap, _) = memory(flow).await;
    println!(
        "{label}: guest memory {:.2} MiB at the start (heap {:.2} MiB)",
        mib(start),
        mib(heap)
    );
    let started = Instant::now();
    let events = memory_events();
    let quarter = events / 4;
    for part in 1..=4 {
        futures::stream::iter(0..quarter)
            .map(|_| flow.call("push", event))
            .buffer_unordered(MEMORY_CONCURRENCY)
            .for_each(|result| async move {
                result.expect("push succeeds");
            })
            .await;
        let (bytes, heap, timers) = memory(flow).await;
        println!(
            "{label}: guest memory {:.2} MiB after {} events (heap {:.2} MiB, {timers} timers pending)",
            mib(bytes),
            part * quarter,
            mib(heap)
        );
    }
    // Let the timers the last events armed run out, then look once more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (bytes, heap, timers) = memory(flow).await;
    println!(
        "{label}: guest memory {:.2} MiB once idle (heap {:.2} MiB, {timers} timers pending); {} events in {:.1} s",
        mib(bytes),
        mib(heap),
        events,
        started.elapsed().as_secs_f64()
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn collector_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cache_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flowhost-bench-collector");
    let bundler = Bundler::open(&cache_dir, npm_config()).unwrap();
    let (sandbox, sink) = runtime.block_on(async {
        let cache = ArtifactCache::open(&cache_dir).unwrap();
        let sandbox = Sandbox::new(SandboxConfig::default(), Some(cache))
            .await
            .unwrap();
        (Arc::new(sandbox), format!("{}/collect", start_sink().await))
    });
    let build = |file: &str| {
        let path = workspace(&format!("tests/configs/valid/{file}"));
        runtime
            .block_on(bundler.build(&sandbox, &path, &BuildOptions::default()))
            .map(|artifact| artifact.code)
    };
    let (noop, api) = match (build("collect-noop.json"), build("collect-api.json")) {
        (Ok(noop), Ok(api)) => (noop, api),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("skipping: the bench flows do not bundle here:\n{error}");
            return;
        }
    };
    let compile = |file: &str| {
        let source = std::fs::read_to_string(workspace(&format!("benches/flows/{file}"))).unwrap();
        runtime
            .block_on(sandbox.compile_flow(&source))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let (leaky, hashing) = (compile("leaky.mjs"), compile("hashing.mjs"));
    let page_view = event("page-view.json");

    // Memory over many events, printed once.
    runtime.block_on(async {
        let flow = start(&sandbox, "noop", noop.clone(), &sink).await;
        print_memory_over_events("noop flow", &flow, &page_view).await;
        flow.shutdown().await;
        let flow = start(&sandbox, "api", api.clone(), &sink).await;
        print_memory_over_events("api flow", &flow, &page_view).await;
        flow.shutdown().await;
        let flow = start(&sandbox, "leaky", leaky.clone(), &sink).await;
        print_memory_over_events("leaky flow", &flow, &page_view).await;
        flow.shutdown().await;
    });

    // The noop flow on a live instance, called directly.
    let limits = sandbox.guest_limits();
    let mut guest = runtime.block_on(async {
        let mut guest = Guest::instantiate(sandbox.instance_pre(), "noop".into(), limits)
            .await
            .unwrap();
        guest
            .load(
                1,
                &noop.bytecode,
                r#"{"flow":"noop","env":{},"config":null}"#,
            )
            .await
            .unwrap();
        let loaded = guest.store.data_mut().completions.drain(..).count();
        assert_eq!(loaded, 1, "the noop flow loads without I/O");
        guest
    });
    let mut id = 2u32;
    let mut group = c.benchmark_group("noop");
    group.bench_function("push_raw", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    id = id.wrapping_add(1).max(2);
                    guest.call(id, "push", &page_view).await.unwrap();
                    let completions: Vec<_> =
                        guest.store.data_mut().completions.drain(..).collect();
                    assert!(
                        completions.len() == 1 && completions[0].ok,
                        "the noop push completes in its own call: {completions:?}"
                    );
                }
                started.elapsed()
            })
        })
    });
    drop(guest);
    let flow = runtime.block_on(start(&sandbox, "noop", noop.clone(), &sink));
    group.bench_function("push_flow", |b| {
        b.to_async(&runtime)
            .iter(|| async { flow.call("push", &page_view).await.unwrap() })
    });
    group.finish();
    runtime.block_on(flow.shutdown());

    let flow = runtime.block_on(start(&sandbox, "api", api, &sink));
    let mut group = c.benchmark_group("api");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("push_flow", |b| {
        b.to_async(&runtime)
            .iter(|| async { flow.call("push", &page_view).await.unwrap() })
    });
    group.finish();
    runtime.block_on(flow.shutdown());

    // 100 digests per call; divide by 100 for one.
    let flow = runtime.block_on(start(&sandbox, "hashing", hashing, &sink));
    let input = serde_json::to_string(&page_view).unwrap();
    let mut group = c.benchmark_group("hash");
    for export in ["native", "javascript"] {
        group.bench_function(export, |b| {
            b.to_async(&runtime)
                .iter(|| async { flow.call(export, &input).await.unwrap() })
        });
    }
    group.finish();
    runtime.block_on(flow.shutdown());
}

criterion_group!(benches, collector_benches);
criterion_main!(benches);
