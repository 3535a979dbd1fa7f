//! Costs of self-bundling with a warm package store, for the bench flows (the api flow and the
//! noop flow): loading the config, resolving from the store's index, linking `node_modules`,
//! esbuild and the compile to bytecode, with and without the bundle and bytecode caches.
//!
//! - `<flow>/esbuild`: everything up to the bundle, esbuild included (bundle cache bypassed);
//! - `<flow>/esbuild+compile`: the same plus the bytecode compile (no artifact cache), i.e. what
//!   `flowhost bundle` does for a config it has not seen with packages it has;
//! - `<flow>/cached`: a config seen before: bundle and bytecode from the caches.
//!
//! The first run fills the store from the registry named by `NPM_CONFIG_REGISTRY` (else
//! `npm config get registry`). A flow that does not bundle on this build (the api flow needs
//! the guest's `http` module) is reported and skipped. Run with
//! `cargo bench -p flowhost --bench bundle`.

mod support;

use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use flowhost::build::{BuildOptions, Bundler, compile};
use flowhost::cache::ArtifactCache;
use flowhost::sandbox::{Sandbox, SandboxConfig};
use support::npm_config;

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/configs/valid")
        .join(name)
}

fn bundle_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cache_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flowhost-bench-bundle");
    let bundler = Bundler::open(&cache_dir, npm_config()).unwrap();
    // Two sandboxes: one whose compiles always run, one that keeps bytecode in the cache.
    let (uncached, cached) = runtime.block_on(async {
        let cache = ArtifactCache::open(&cache_dir).unwrap();
        let cached = Sandbox::new(SandboxConfig::default(), Some(cache))
            .await
            .unwrap();
        let uncached = Sandbox::new(SandboxConfig::default(), None).await.unwrap();
        (uncached, cached)
    });

    let rebuild = BuildOptions {
        skip_bundle_cache: true,
        ..BuildOptions::default()
    };
    let warm = BuildOptions::default();
    for (label, file) in [("api", "collect-api.json"), ("noop", "collect-noop.json")] {
        let path = config(file);

        // Fill the store (and the caches) once, outside the measurement.
        if let Err(error) = runtime.block_on(bundler.build(&cached, &path, &warm)) {
            eprintln!("skipping the {label} flow: it does not bundle on this build:\n{error}");
            continue;
        }

        let mut group = c.benchmark_group(label);
        group.sample_size(30);
        group.bench_function("esbuild", |b| {
            b.to_async(&runtime)
                .iter(|| async { bundler.bundle(&path, &rebuild).await.unwrap() })
        });
        group.bench_function("esbuild+compile", |b| {
            b.to_async(&runtime).iter(|| async {
                let bundle = bundler.bundle(&path, &rebuild).await.unwrap();
                compile(&uncached, bundle, &path).await.unwrap()
            })
        });
        group.bench_function("cached", |b| {
            b.to_async(&runtime)
                .iter(|| async { bundler.build(&cached, &path, &warm).await.unwrap() })
        });
        group.finish();
    }
}

criterion_group!(benches, bundle_benches);
criterion_main!(benches);
