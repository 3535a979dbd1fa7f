//! `flowhost exec` end to end: the real binary, real wasmtime, a real HTTP sink on 127.0.0.1.

mod support;

use std::time::{Duration, Instant};

use support::{exec_with_sink, flow, flowhost, shared_cache, start_sink};

fn events(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{{\"name\":\"{n}\"}}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_flow_that_awaits_a_timer_and_outbound_http_in_input_order() {
    let sink = start_sink(Duration::ZERO).await;
    // Later events wait less, so they finish first; the output must still follow the input.
    let input: String = (0..8)
        .map(|i| {
            format!(
                "{{\"name\":\"page view\",\"seq\":{i},\"delay\":{}}}\n",
                (8 - i) * 15
            )
        })
        .collect();
    let run = exec_with_sink(&flow("timer-http.mjs"), &sink.url, &input).await;
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);

    let lines = run.lines();
    assert_eq!(lines.len(), 8);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["ok"], true, "{line}");
        assert_eq!(line["result"]["seq"], i as u64, "{line}");
        assert_eq!(line["result"]["status"], 200, "{line}");
        assert!(line["result"]["sink"]["received"].as_u64().unwrap() >= 1);
    }
    let bodies = sink.log.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 8);
    // The sink saw the short delays first: completion order differs from input order.
    let first: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(first["seq"], 7, "{bodies:?}");
    assert!(
        sink.log
            .flows
            .lock()
            .unwrap()
            .iter()
            .all(|f| f == "timer-http")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_destination_does_not_serialise_two_hundred_events() {
    let sink = start_sink(Duration::from_secs(1)).await;
    let input: String = (0..200)
        .map(|i| format!("{{\"name\":\"page view\",\"seq\":{i},\"delay\":0}}\n"))
        .collect();
    let cache = shared_cache();
    let started = Instant::now();
    let run = flowhost(
        &[
            "exec",
            flow("timer-http.mjs").to_str().unwrap(),
            "--env",
            &format!("SINK_URL={}", sink.url),
        ],
        &[
            ("CACHE_DIR", cache.to_str().unwrap()),
            ("FLOWHOST_HTTP_ALLOW_HOSTS", "127.0.0.1"),
        ],
        &input,
    )
    .await;
    let wall = started.elapsed();
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.lines().len(), 200);
    assert!(run.lines().iter().all(|l| l["ok"] == true));
    // One instance, yet the sink held (nearly) all 200 requests open at once: the guest never
    // blocked on I/O. Serial handling would show 1 here and take 200 s.
    let concurrent = sink
        .log
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    println!("200 events against a 1 s sink: wall {wall:?}, max concurrent requests {concurrent}");
    assert!(
        concurrent >= 150,
        "only {concurrent} requests were in flight at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_stopped_at_the_deadline_and_the_next_call_gets_a_fresh_instance() {
    let cache = shared_cache();
    let run = flowhost(
        &["exec", flow("limits.mjs").to_str().unwrap()],
        &[
            ("CACHE_DIR", cache.to_str().unwrap()),
            ("FLOWHOST_CPU_DEADLINE_MS", "300"),
        ],
        &events(&["page view", "page view", "loop forever", "page view"]),
    )
    .await;
    assert_eq!(run.status, Some(3), "stderr: {}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines[0]["result"]["count"], 1);
    assert_eq!(lines[1]["result"]["count"], 2);
    let error = lines[2]["error"].as_str().unwrap();
    assert!(error.contains("CPU deadline of 300 ms"), "{error}");
    assert!(error.contains("discarded"), "{error}");
    // A fresh instance: the module-level counter started again.
    assert_eq!(lines[3]["ok"], true, "{}", lines[3]);
    assert_eq!(lines[3]["result"]["count"], 1, "{}", lines[3]);
    assert!(
        run.stderr.contains("Guest instance discarded"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("limits"),
        "the log names the flow: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_limit_and_the_host_stays_small() {
    let cache = shared_cache();
    let run = flowhost(
        &["exec", flow("limits.mjs").to_str().unwrap()],
        &[
            ("CACHE_DIR", cache.to_str().unwrap()),
            ("FLOWHOST_MEMORY_LIMIT_MB", "32"),
        ],
        &events(&["page view", "hog memory", "page view"]),
    )
    .await;
    let lines = run.lines();
    assert_eq!(lines[0]["ok"], true);
    let error = lines[1]["error"].as_str().unwrap();
    assert!(error.contains("out of memory"), "{error}");
    assert_eq!(lines[2]["ok"], true, "{}", lines[2]);

    // The host's own peak RSS (of all children so far) stays far below what an unbounded guest
    // would take; a runaway would reach gigabytes.
    let mut usage = unsafe { std::mem::zeroed::<libc::rusage>() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let peak_mib = usage.ru_maxrss / 1024;
    println!("peak RSS of flowhost children: {peak_mib} MiB");
    assert!(peak_mib < 512, "peak RSS {peak_mib} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_bad_lines_and_unknown_exports_are_reported_per_event() {
    let cache = shared_cache();
    let input = "{\"name\":\"throw error\"}\nnot json\n{\"name\":\"unserialisable result\"}\n{\"name\":\"page view\"}\n{\"name\":\"cyclic result\"}\n";
    let run = flowhost(
        &["exec", flow("limits.mjs").to_str().unwrap()],
        &[("CACHE_DIR", cache.to_str().unwrap())],
        input,
    )
    .await;
    assert_eq!(run.status, Some(3), "stderr: {}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 5);
    let thrown = lines[0]["error"].as_str().unwrap();
    assert!(
        thrown.contains("TypeError") && thrown.contains("on purpose"),
        "{thrown}"
    );
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("line 2 is not JSON"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2]["ok"], false, "{}", lines[2]);
    assert_eq!(lines[3]["ok"], true, "{}", lines[3]);
    // Errors leave as their name and message, a way back up as "[Circular]", a shared object
    // twice.
    assert_eq!(
        lines[4]["result"],
        serde_json::json!({
            "error": {"name": "TypeError", "message": "kept"},
            "shared": {},
            "self": "[Circular]",
            "again": {}
        }),
        "{}",
        lines[4]
    );

    let run = flowhost(
        &[
            "exec",
            flow("limits.mjs").to_str().unwrap(),
            "--export",
            "nope",
        ],
        &[("CACHE_DIR", cache.to_str().unwrap())],
        "{\"name\":\"page view\"}\n",
    )
    .await;
    let error = run.lines()[0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("nope"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_that_does_not_compile_or_exist_stops_with_a_clear_error() {
    let cache = shared_cache();
    let run = flowhost(
        &["exec", flow("syntax-error.mjs").to_str().unwrap()],
        &[("CACHE_DIR", cache.to_str().unwrap())],
        "",
    )
    .await;
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("does not compile"), "{}", run.stderr);
    assert!(run.stderr.contains("syntax-error.mjs"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    let run = flowhost(&["exec", "/nonexistent/flow.mjs"], &[], "").await;
    assert_eq!(run.status, Some(1));
    assert!(
        run.stderr.contains("/nonexistent/flow.mjs"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_flow_runs_when_no_bundle_is_given() {
    let cache = shared_cache();
    let run = flowhost(
        &["exec"],
        &[("CACHE_DIR", cache.to_str().unwrap())],
        &events(&["page view", "pageview"]),
    )
    .await;
    let lines = run.lines();
    assert_eq!(lines[0]["result"]["entity"], "page");
    assert_eq!(lines[0]["result"]["action"], "view");
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("Event name is invalid")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loads_from_the_artifact_cache_and_a_truncated_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_str().unwrap();
    let envs = [("CACHE_DIR", cache)];
    let input = events(&["page view"]);

    let first = flowhost(&["exec"], &envs, &input).await;
    assert_eq!(first.status, Some(0), "{}", first.stderr);
    assert!(
        first.stderr.contains("Guest shim compiled"),
        "{}",
        first.stderr
    );

    let second = flowhost(&["exec"], &envs, &input).await;
    assert_eq!(second.status, Some(0), "{}", second.stderr);
    assert!(
        second.stderr.contains("compilation skipped"),
        "{}",
        second.stderr
    );
    assert!(
        !second.stderr.contains("Guest shim compiled"),
        "{}",
        second.stderr
    );

    // Cut every cached artifact in half, as a crash mid-write on another tool could.
    for entry in std::fs::read_dir(dir.path().join("artifacts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            let len = std::fs::metadata(&path).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(len / 2).unwrap();
        }
    }
    let third = flowhost(&["exec"], &envs, &input).await;
    assert_eq!(third.status, Some(0), "{}", third.stderr);
    assert!(third.stderr.contains("unusable"), "{}", third.stderr);
    assert!(
        third.stderr.contains("Guest shim compiled"),
        "{}",
        third.stderr
    );
    assert_eq!(third.lines()[0]["ok"], true);
}
