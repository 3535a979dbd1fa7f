//! Self-bundling end to end: `flowhost bundle` and `flowhost exec <config>` with the real
//! binary, the real npm registry named by this machine's npm configuration, real esbuild and a
//! real HTTP sink on 127.0.0.1.
//!
//! Every test starts from its own cache directory, so each one also shows what a cold package
//! store costs; the registry is `NPM_CONFIG_REGISTRY`, else whatever `npm config get registry`
//! says (flowhost itself has no default registry).

mod support;

use std::path::Path;
use std::time::Duration;

use support::{Run, flowhost, registry, start_sink};

/// A registry nothing listens on.
const DEAD_REGISTRY: &str = "http://127.0.0.1:9";

fn config(kind: &str, name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/configs")
        .join(kind)
        .join(name)
        .display()
        .to_string()
}

/// The two bench events as JSON lines: a page view and an order with three nested entities.
fn bench_events() -> String {
    ["page-view.json", "order-complete.json"]
        .iter()
        .map(|name| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/events")
                .join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            format!("{event}\n")
        })
        .collect()
}

/// A fresh cache directory (package store, bundle cache, artifacts) for one test, removed when
/// the test ends.
fn fresh_cache(name: &str) -> tempfile::TempDir {
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flowhost-bundle-tests");
    std::fs::create_dir_all(&parent).unwrap();
    tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in(parent)
        .unwrap()
}

async fn bundle(config: &str, out: &Path, cache: &Path, extra: &[&str], registry: &str) -> Run {
    let mut args = vec!["bundle", config, "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    flowhost(
        &args,
        &[
            ("CACHE_DIR", cache.to_str().unwrap()),
            ("NPM_CONFIG_REGISTRY", registry),
        ],
        "",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_flow_config_runs_both_bench_events_through_exec() {
    let dir = fresh_cache("noop-exec");
    let cache = dir.path();
    let run = flowhost(
        &["exec", &config("valid", "collect-noop.json")],
        &[
            ("CACHE_DIR", cache.to_str().unwrap()),
            ("NPM_CONFIG_REGISTRY", registry()),
        ],
        &bench_events(),
    )
    .await;
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);

    let lines = run.lines();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    for (line, name) in lines.iter().zip(["page view", "order complete"]) {
        // The collector's push result: the event it made and the destination that took it.
        let result = &line["result"];
        assert_eq!(result["ok"], true, "{line}");
        assert_eq!(result["event"]["name"], name, "{line}");
        assert_eq!(result["done"]["noop"]["type"], "noop", "{line}");
        // Stamped by this collector run, not sent by the client.
        assert_eq!(
            result["event"]["source"]["trace"].as_str().map(str::len),
            Some(32),
            "{line}"
        );
    }
    assert!(run.stderr.contains("Flow built"), "{}", run.stderr);
}

/// The acceptance test of self-bundling: the api flow's config, bundled by flowhost, maps both
/// bench events and its destination delivers them to the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_flow_config_delivers_mapped_bench_events_to_the_sink() {
    let sink = start_sink(Duration::ZERO).await;
    let dir = fresh_cache("api-exec");
    let cache = dir.path();
    let run = flowhost(
        &[
            "exec",
            &config("valid", "collect-api.json"),
            "--env",
            &format!("SINK_URL={}/collect", sink.url),
        ],
        &[
            ("CACHE_DIR", cache.to_str().unwrap()),
            ("NPM_CONFIG_REGISTRY", registry()),
            ("FLOWHOST_HTTP_ALLOW_HOSTS", "127.0.0.1"),
        ],
        &bench_events(),
    )
    .await;
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    for line in run.lines() {
        assert_eq!(line["result"]["ok"], true, "{line}");
        assert_eq!(line["result"]["done"]["api"]["type"], "api", "{line}");
    }

    let bodies: Vec<serde_json::Value> = sink
        .log
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    let page = bodies
        .iter()
        .find(|b| b["event_name"] == "page_view")
        .expect("the page view was delivered");
    assert_eq!(
        *page,
        serde_json::json!({
            "event_name": "page_view",
            "page_title": "Everyday Ruck Snack | Example Shop",
            "page_location": "https://www.example.com/products/everyday-ruck-snack?utm_source=newsletter&utm_medium=email",
            "page_referrer": "https://www.google.com/",
            "session_id": "s3ss10n-8841",
            "client_id": "c00k13-d3v1c3-4b2f",
            "language": "en",
            "ts": 1733220000000u64
        })
    );
    let order = bodies
        .iter()
        .find(|b| b["event_name"] == "purchase")
        .expect("the order was delivered");
    assert_eq!(order["transaction_id"], "ORD-2024-12345");
    assert_eq!(order["value"], 555);
    assert_eq!(order["currency"], "EUR");
    // The event grants marketing consent, so the consent-gated field is mapped.
    assert_eq!(order["email"], "customer@example.com");
    assert_eq!(
        order["items"],
        serde_json::json!([
            {"item_id": "ers", "item_name": "Everyday Ruck Snack", "price": 420, "quantity": 1},
            {"item_id": "cc", "item_name": "Cool Cap", "price": 42, "quantity": 2},
            {"item_name": "Surprise", "quantity": 1}
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_writes_module_manifest_and_bytecode_and_a_warm_run_skips_esbuild() {
    let dir = fresh_cache("bundle-warm");
    let cache = dir.path();
    let out = cache.join("out");
    let flow = config("valid", "collect-noop.json");

    let cold = bundle(&flow, &out, cache, &[], registry()).await;
    assert_eq!(cold.status, Some(0), "stderr: {}", cold.stderr);
    assert!(cold.stdout.contains("bundle built"), "{}", cold.stdout);
    for file in ["flow.mjs", "flow.json", "flow.qjsbc"] {
        let len = std::fs::metadata(out.join(file))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 0, "{file} was not written");
        assert!(cold.stdout.contains(file), "{}", cold.stdout);
    }
    let module = std::fs::read_to_string(out.join("flow.mjs")).unwrap();
    assert!(
        module
            .replace(' ', "")
            .contains("export{ingest,init,push,shutdown}"),
        "the bundle exports the handlers"
    );

    // The manifest tells the host which source it serves itself, with its settings.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("flow.json")).unwrap()).unwrap();
    assert_eq!(manifest["flow"], "default");
    assert_eq!(
        manifest["exports"],
        serde_json::json!(["init", "push", "ingest", "shutdown"])
    );
    assert_eq!(manifest["nativeSources"][0]["id"], "http");
    assert_eq!(
        manifest["nativeSources"][0]["package"],
        "@walkeros/server-source-express"
    );
    assert_eq!(
        manifest["nativeSources"][0]["config"]["settings"]["path"],
        "/collect"
    );
    assert_eq!(
        manifest["packages"],
        serde_json::json!([{"name": "@walkeros/collector", "version": "4.2.1"}])
    );

    // Every stage is timed in one line.
    let built = cold
        .stderr
        .lines()
        .find(|l| l.contains("Flow built"))
        .expect("a Flow built line");
    for field in [
        "load_ms",
        "resolve_ms",
        "materialize_ms",
        "esbuild_ms",
        "compile_ms",
    ] {
        assert!(built.contains(field), "{built}");
    }

    // Same config, same packages: the bundle and the bytecode come from the caches.
    let warm = bundle(&flow, &out, cache, &[], registry()).await;
    assert_eq!(warm.status, Some(0), "stderr: {}", warm.stderr);
    assert!(
        warm.stdout
            .contains("bundle from cache, bytecode from cache"),
        "{}",
        warm.stdout
    );
    assert!(warm.stdout.contains("esbuild skipped"), "{}", warm.stdout);
    assert_eq!(
        std::fs::read_to_string(out.join("flow.mjs")).unwrap(),
        module
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_bundling_needs_no_registry_once_the_store_is_warm() {
    let dir = fresh_cache("offline");
    let cache = dir.path();
    let out = cache.join("out");
    let flow = config("valid", "collect-api.json");

    // Cold store, registry unreachable: the registry error, with what to do about it.
    let cold = bundle(&flow, &out, cache, &[], DEAD_REGISTRY).await;
    assert_eq!(cold.status, Some(1), "stdout: {}", cold.stdout);
    assert!(
        cold.stderr
            .contains("npm registry unreachable at http://127.0.0.1:9"),
        "{}",
        cold.stderr
    );
    assert!(!cold.stderr.contains("panicked"), "{}", cold.stderr);

    // Cold store, offline: says the store lacks the package.
    let offline_cold = bundle(&flow, &out, cache, &["--offline"], DEAD_REGISTRY).await;
    assert_eq!(offline_cold.status, Some(1));
    assert!(
        offline_cold.stderr.contains("is not in the local store"),
        "{}",
        offline_cold.stderr
    );

    // Warm the store online, then bundle again (esbuild included) with the registry dead.
    let warm = bundle(&flow, &out, cache, &[], registry()).await;
    assert_eq!(warm.status, Some(0), "stderr: {}", warm.stderr);
    let offline = bundle(
        &flow,
        &out,
        cache,
        &["--offline", "--no-bundle-cache"],
        DEAD_REGISTRY,
    )
    .await;
    assert_eq!(offline.status, Some(0), "stderr: {}", offline.stderr);
    assert!(
        offline.stdout.contains("bundle built"),
        "{}",
        offline.stdout
    );
}

/// Configs that load but cannot be bundled: each fails with its own message, before the
/// sandbox starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_that_cannot_be_bundled_fail_with_a_clear_error() {
    let dir = fresh_cache("unbundlable");
    let cache = dir.path();
    let out = cache.join("out");
    let cases = [
        (
            "unknown-package.json",
            "package @walkeros/flowhost-test-no-such-package was not found in the registry",
        ),
        (
            "no-matching-version.json",
            "no version of @walkeros/collector matches `^99.0.0` (required by the flow)",
        ),
        (
            "missing-node-module.json",
            "flowhost-test-destination-spawn imports the Node module \"node:child_process\" \
             (flowhost-test-destination-spawn/index.mjs:2:22), which flowhost's sandbox does \
             not provide",
        ),
        (
            "inline-code-syntax-error.json",
            "flows.default.destinations.broken.code.push: the inline code does not compile: \
             Unexpected \"*\"",
        ),
    ];
    for (name, expected) in cases {
        let run = bundle(&config("bundle", name), &out, cache, &[], registry()).await;
        assert_eq!(run.status, Some(1), "{name}: {}", run.stdout);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        // The sandbox never started: failing configs cost no shim compilation.
        assert!(!run.stderr.contains("Guest shim"), "{name}: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_reports_a_broken_config_instead_of_running_it() {
    let dir = fresh_cache("exec-broken");
    let cache = dir.path();
    let run = flowhost(
        &["exec", &config("broken", "missing-var.json")],
        &[
            ("CACHE_DIR", cache.to_str().unwrap()),
            ("NPM_CONFIG_REGISTRY", DEAD_REGISTRY),
        ],
        "{\"name\":\"page view\"}\n",
    )
    .await;
    assert_eq!(run.status, Some(1));
    assert!(
        run.stderr.contains("Variable \"sinkHost\" not found"),
        "{}",
        run.stderr
    );
}
