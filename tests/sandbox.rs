//! The sandbox against hostile guests: hand-written modules that call the host imports with
//! garbage, linked with the very linker the shim uses.

mod support;

use flowhost::cache::ArtifactCache;
use flowhost::sandbox::guest::arm_deadlines;
use flowhost::sandbox::imports::GuestState;
use flowhost::sandbox::{Sandbox, SandboxConfig};
use wasmtime::{Module, Store};

const HOSTILE: &str = r#"
(module
  (import "flowhost:flow/host" "log" (func $log (param i32 i32 i32)))
  (import "flowhost:flow/host" "complete" (func $complete (param i32 i32 i32 i32)))
  (import "flowhost:flow/host" "http-start" (func $http (param i32 i32) (result i32)))
  (import "flowhost:flow/host" "set-timer" (func $timer (param f64)))
  (import "flowhost:flow/host" "discard" (func $discard (param i32 i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "ok")
  (data (i32.const 16) "\ff\fe\fd")
  (func (export "log_ok") (call $log (i32.const 2) (i32.const 0) (i32.const 2)))
  (func (export "log_out_of_bounds") (call $log (i32.const 2) (i32.const 0xfffffff0) (i32.const 100)))
  (func (export "log_bad_level") (call $log (i32.const 99) (i32.const 0) (i32.const 2)))
  (func (export "complete_huge") (call $complete (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 0x7fffffff)))
  (func (export "complete_not_utf8") (call $complete (i32.const 1) (i32.const 1) (i32.const 16) (i32.const 3)))
  (func (export "http_past_the_end") (drop (call $http (i32.const 65530) (i32.const 100))))
  (func (export "timer_nan") (call $timer (f64.div (f64.const 0) (f64.const 0))))
  (func (export "discard_past_the_end") (call $discard (i32.const 57344) (i32.const 16384)))
  (func (export "discard_unaligned") (call $discard (i32.const 3) (i32.const 5000)))
  (func (export "discard_and_read") (result i32)
    (i32.store (i32.const 8192) (i32.const 7))
    (call $discard (i32.const 8192) (i32.const 8192))
    (i32.load (i32.const 8192)))
  (func (export "clock_out_of_bounds") (drop (call $clock (i32.const 0) (i64.const 0) (i32.const 65535))))
  (func (export "clock_bad_id") (result i32) (call $clock (i32.const 77) (i64.const 0) (i32.const 0)))
  (func (export "random_huge") (result i32) (call $random (i32.const 0) (i32.const 0x7fffffff)))
  (func (export "fd_write_out_of_bounds") (drop (call $fd_write (i32.const 1) (i32.const 70000) (i32.const 1) (i32.const 0))))
  (func (export "fd_write_bad_fd") (result i32) (call $fd_write (i32.const 9) (i32.const 0) (i32.const 0) (i32.const 0)))
)
"#;

async fn sandbox() -> std::sync::Arc<Sandbox> {
    let cache = ArtifactCache::open(support::shared_cache()).expect("test cache opens");
    Sandbox::new(SandboxConfig::default(), Some(cache))
        .await
        .expect("sandbox starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_pointers_and_values_from_a_guest_become_errors_not_host_panics() {
    let sandbox = sandbox().await;
    let module = Module::new(sandbox.engine(), wat::parse_str(HOSTILE).unwrap()).unwrap();
    let pre = sandbox
        .linker()
        .instantiate_pre(&module)
        .expect("host defines every import");
    let mut store = Store::new(sandbox.engine(), GuestState::new("hostile".into(), 1 << 20));
    arm_deadlines(&mut store);
    store.set_epoch_deadline(1);
    let instance = pre.instantiate_async(&mut store).await.unwrap();

    let expect_error = [
        ("log_out_of_bounds", "out-of-bounds"),
        ("log_bad_level", "log level 99"),
        ("complete_huge", "more than"),
        ("complete_not_utf8", "not UTF-8"),
        ("http_past_the_end", "out-of-bounds"),
        ("clock_out_of_bounds", "out-of-bounds"),
        ("fd_write_out_of_bounds", "out-of-bounds"),
        ("discard_past_the_end", "out-of-bounds"),
    ];
    for (name, words) in expect_error {
        let func = instance.get_typed_func::<(), ()>(&mut store, name).unwrap();
        let err = func.call_async(&mut store, ()).await.expect_err(name);
        let text = format!("{err:#}");
        assert!(text.contains(words), "{name}: {text}");
    }

    // Nonsense that the host can answer with an errno or ignore is not a trap.
    for (name, errno) in [
        ("clock_bad_id", 28),
        ("random_huge", 28),
        ("fd_write_bad_fd", 8),
    ] {
        let func = instance
            .get_typed_func::<(), i32>(&mut store, name)
            .unwrap();
        assert_eq!(
            func.call_async(&mut store, ()).await.unwrap(),
            errno,
            "{name}"
        );
    }
    // A range that covers no whole page is left alone; a discarded page reads as zeros.
    let unaligned = instance
        .get_typed_func::<(), ()>(&mut store, "discard_unaligned")
        .unwrap();
    unaligned.call_async(&mut store, ()).await.unwrap();
    let discard = instance
        .get_typed_func::<(), i32>(&mut store, "discard_and_read")
        .unwrap();
    assert_eq!(discard.call_async(&mut store, ()).await.unwrap(), 0);
    let timer = instance
        .get_typed_func::<(), ()>(&mut store, "timer_nan")
        .unwrap();
    timer.call_async(&mut store, ()).await.unwrap();
    assert_eq!(store.data().timer_deadline, None);

    // The host is unharmed: a well-formed call still works on a fresh store.
    let mut store = Store::new(sandbox.engine(), GuestState::new("hostile".into(), 1 << 20));
    arm_deadlines(&mut store);
    store.set_epoch_deadline(1);
    let instance = pre.instantiate_async(&mut store).await.unwrap();
    let ok = instance
        .get_typed_func::<(), ()>(&mut store, "log_ok")
        .unwrap();
    ok.call_async(&mut store, ()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_importing_something_the_host_lacks_is_refused_at_link_time() {
    let sandbox = sandbox().await;
    let wasm = wat::parse_str(r#"(module (import "flowhost:flow/host" "open-socket" (func)))"#);
    let module = Module::new(sandbox.engine(), wasm.unwrap()).unwrap();
    let err = sandbox
        .linker()
        .instantiate_pre(&module)
        .err()
        .expect("unknown import refused");
    assert!(format!("{err:#}").contains("open-socket"), "{err:#}");
}

/// Keeps a few objects, can make a burst of garbage, and checks the kept objects.
const BURSTY_FLOW: &str = r#"
const kept = [];
export function keep(n) {
  for (let i = kept.length, end = kept.length + n; i < end; i++) {
    kept.push({ i, label: "item-" + i, pair: [i, -i] });
  }
  return kept.length;
}
export function burst(n) {
  const junk = [];
  for (let i = 0; i < n; i++) junk.push({ i, text: "x".repeat(i % 100), list: [i, i + 1] });
  return junk.length;
}
export function check() {
  let sum = 0;
  for (const k of kept) {
    if (k.label !== "item-" + k.i || k.pair[0] !== k.i || k.pair[1] !== -k.i) {
      throw new Error("kept object " + k.i + " changed");
    }
    sum += k.i;
  }
  return sum;
}
"#;

async fn start_bursty(sandbox: &std::sync::Arc<Sandbox>) -> flowhost::sandbox::Flow {
    let code = sandbox.compile_flow(BURSTY_FLOW).await.unwrap();
    sandbox
        .start_flow(flowhost::sandbox::FlowSpec {
            name: "bursty".into(),
            code,
            env: Default::default(),
            config: serde_json::Value::Null,
            outbound: None,
        })
        .await
        .unwrap()
}

/// `(memoryBytes, releasedBytes)` of the flow's instance.
async fn memory_figures(flow: &flowhost::sandbox::Flow) -> (u64, u64) {
    let status = flow.status().await.remove(0).expect("the instance answers");
    (
        status["memoryBytes"].as_u64().unwrap(),
        status["releasedBytes"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_instance_gives_a_burst_of_garbage_back_and_keeps_its_objects() {
    let cache = ArtifactCache::open(support::shared_cache()).expect("test cache opens");
    let config = SandboxConfig {
        idle_trim: Some(std::time::Duration::from_millis(300)),
        ..SandboxConfig::default()
    };
    let sandbox = std::sync::Arc::new(Sandbox::new(config, Some(cache)).await.unwrap());
    let flow = start_bursty(&sandbox).await;
    let sum = |n: u64| (n * (n - 1) / 2).to_string();

    assert_eq!(flow.call("keep", "2000").await.unwrap(), "2000");
    let (before, _) = memory_figures(&flow).await;
    assert_eq!(flow.call("burst", "60000").await.unwrap(), "60000");
    let (grown, _) = memory_figures(&flow).await;
    assert!(
        grown > before + (8 << 20),
        "the burst grew memory: {before} -> {grown}"
    );

    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (_, released) = memory_figures(&flow).await;
    assert!(
        released > (grown - before) / 2,
        "an idle instance gives most of the burst back: {released} of {} bytes",
        grown - before
    );
    println!("burst: memory {before} -> {grown} bytes, {released} given back");
    assert_eq!(flow.call("check", "null").await.unwrap(), sum(2000));

    // The slabs given back serve new objects, and the old ones are untouched.
    assert_eq!(flow.call("burst", "60000").await.unwrap(), "60000");
    assert_eq!(flow.call("keep", "3000").await.unwrap(), "5000");
    assert_eq!(flow.call("check", "null").await.unwrap(), sum(5000));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (grown_again, released_again) = memory_figures(&flow).await;
    assert!(
        grown_again < grown + (4 << 20),
        "the second burst reused the memory: {grown} -> {grown_again}"
    );
    assert!(
        released_again > released,
        "the second burst was given back too"
    );
    assert_eq!(flow.call("check", "null").await.unwrap(), sum(5000));
    flow.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_memory_limit_is_reported_as_out_of_memory() {
    let sandbox = sandbox().await;
    let flow = start_bursty(&sandbox).await;
    let error = flow.call("burst", "400000").await.unwrap_err().to_string();
    println!("past the limit: {error}");
    assert!(error.contains("out of memory"), "{error}");
    // The next call gets a fresh instance.
    assert_eq!(flow.call("keep", "3").await.unwrap(), "3");
    flow.shutdown().await;
}
