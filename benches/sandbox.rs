//! Costs of the sandbox core on this machine: instantiating the shim, an empty call on a live
//! instance (raw and through a flow's driver task), and the push of a flow that awaits a timer
//! and an outbound HTTP request to a sink on 127.0.0.1.
//!
//! Run with `cargo bench -p flowhost --bench sandbox`; pin it with `taskset -c 1` to compare runs.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use flowhost::cache::ArtifactCache;
use flowhost::sandbox::guest::Guest;
use flowhost::sandbox::{FlowSpec, Sandbox, SandboxConfig};
use support::start_sink;

const BENCH_FLOW: &str = r#"
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export function noop() {}
export function echo(value) { return value; }
export async function push(event) {
  await sleep(0);
  const response = await flowhost.request({
    method: 'POST', url: `${process.env.SINK_URL}/collect`, body: JSON.stringify(event),
  });
  return response.status;
}
"#;

const EVENT: &str = r#"{"name":"page view","data":{"title":"Home","id":"/"},"globals":{"pagegroup":"docs"},"user":{"session":"s3ss10n"},"consent":{"functional":true},"id":"1700000000000-gr0up-1","trigger":"load","entity":"page","action":"view","timestamp":1700000000000,"timing":3.14,"group":"gr0up","count":1,"version":{"source":"4.2.1","tagging":1},"source":{"type":"web","id":"https://example.com/","previous_id":""}}"#;

fn sandbox_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cache_dir = std::env::temp_dir().join("flowhost-bench-cache");
    let (sandbox, code, sink) = runtime.block_on(async {
        let cache = ArtifactCache::open(&cache_dir).unwrap();
        let sandbox = Sandbox::new(SandboxConfig::default(), Some(cache))
            .await
            .unwrap();
        let code = sandbox.compile_flow(BENCH_FLOW).await.unwrap();
        (sandbox, code, start_sink().await)
    });
    let limits = sandbox.guest_limits();

    c.bench_function("instantiate", |b| {
        b.to_async(&runtime).iter(|| async {
            Guest::instantiate(sandbox.instance_pre(), "bench".into(), limits)
                .await
                .unwrap()
        })
    });

    // A live instance with the flow loaded, called directly (no driver task, no channels).
    let mut guest = runtime.block_on(async {
        let mut guest = Guest::instantiate(sandbox.instance_pre(), "bench".into(), limits)
            .await
            .unwrap();
        let config = format!(r#"{{"flow":"bench","env":{{"SINK_URL":"{sink}"}},"config":null}}"#);
        guest.load(1, &code.bytecode, &config).await.unwrap();
        assert_eq!(
            guest.store.data_mut().completions.drain(..).count(),
            1,
            "load settles at once"
        );
        guest
    });
    let mut id = 2u32;
    // `iter_custom` runs the whole batch inside one `block_on`, so the figures hold the guest's
    // cost and not the runtime's per-iteration entry.
    for (label, export, input) in [
        ("call_empty_raw", "noop", "null"),
        ("call_echo_event_raw", "echo", EVENT),
    ] {
        c.bench_function(label, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        id = id.wrapping_add(1).max(2);
                        guest.call(id, export, input).await.unwrap();
                        let done = guest.store.data_mut().completions.drain(..).count();
                        assert_eq!(done, 1);
                    }
                    started.elapsed()
                })
            })
        });
    }
    drop(guest);

    let flow = runtime.block_on(async {
        let spec = FlowSpec {
            name: "bench".into(),
            code: code.clone(),
            env: [("SINK_URL".to_string(), sink.clone())].into(),
            config: serde_json::Value::Null,
            outbound: None,
        };
        Arc::new(sandbox.start_flow(spec).await.unwrap())
    });
    c.bench_function("call_empty_flow", |b| {
        b.to_async(&runtime)
            .iter(|| async { flow.call("noop", "null").await.unwrap() })
    });
    let mut group = c.benchmark_group("push");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("timer_and_http", |b| {
        b.to_async(&runtime)
            .iter(|| async { flow.call("push", EVENT).await.unwrap() })
    });
    // The same push with 256 events in flight: timers and responses overlap, so the figure per
    // iteration over 256 is the host's and guest's CPU cost per push, not the timer's latency.
    group.throughput(criterion::Throughput::Elements(256));
    group.bench_function("timer_and_http_256_concurrent", |b| {
        b.to_async(&runtime).iter(|| async {
            let calls = (0..256).map(|_| flow.call("push", EVENT));
            for result in futures::future::join_all(calls).await {
                result.unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, sandbox_benches);
criterion_main!(benches);
