//! `flowhost run` over real HTTP: the runner endpoints, the express source contract (walkerOS
//! runner reference §5 and §9, Node anchor §5), serve mode, slow and oversized clients and many
//! idle connections. Each test starts the real binary on a loopback port; flows report what
//! they receive to a sink on 127.0.0.1, so delivery is asserted, not assumed.

mod runner_support;
mod support;

use std::io::Write as _;
use std::time::Duration;

use runner_support::{Client, PATIENCE, Req, Response, RunnerProcess, eventually};
use serde_json::{Value, json};
use support::{Sink, registry, start_sink};

const GIF: &str = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

fn flow(name: &str) -> String {
    support::flow(name).display().to_string()
}

/// The recorder flow, reporting to a fresh sink; `sources` is what its `sources()` returns.
async fn recorder(sources: Option<Value>, envs: &[(&str, &str)]) -> (Sink, RunnerProcess) {
    let sink = start_sink(Duration::ZERO).await;
    let sources = sources.map(|s| s.to_string());
    let mut all: Vec<(&str, &str)> = vec![("SINK_URL", sink.url.as_str())];
    if let Some(sources) = &sources {
        all.push(("SOURCES_JSON", sources.as_str()));
    }
    all.extend_from_slice(envs);
    let runner = RunnerProcess::ready(&flow("recorder.mjs"), &all).await;
    (sink, runner)
}

/// A source at /collect with these settings and `async` mode.
fn source(settings: Value, respond_first: Value) -> Value {
    json!({"http": {"config": {"settings": settings, "async": respond_first}}})
}

/// What the sink received: `{source, event, scope}` per delivered event.
fn delivered(sink: &Sink) -> Vec<Value> {
    sink.log
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

async fn wait_delivered(sink: &Sink, count: usize) -> Vec<Value> {
    eventually(&format!("{count} deliveries"), || {
        sink.log.bodies.lock().unwrap().len() >= count
    })
    .await;
    delivered(sink)
}

fn names(deliveries: &[Value]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| d["event"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The `data.title` of each delivered event, sorted: respond-first deliveries may arrive in
/// any order.
fn sorted_titles(deliveries: &[Value]) -> Vec<String> {
    let mut titles: Vec<String> = deliveries
        .iter()
        .filter_map(|d| d["event"]["data"]["title"].as_str())
        .map(String::from)
        .collect();
    titles.sort();
    titles
}

fn assert_keep_alive(response: &Response) {
    assert_eq!(
        response.header("connection"),
        Some("keep-alive"),
        "{response:?}"
    );
    assert_eq!(
        response.header("keep-alive"),
        Some("timeout=5"),
        "{response:?}"
    );
}

fn assert_success_ack(response: &Response) {
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["success"], true);
    assert!(
        body["timestamp"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000_000)
    );
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
}

fn page_view(title: &str) -> Value {
    json!({"name": "page view", "data": {"title": title}})
}

// ---------------------------------------------------------------------------------------------
// Runner endpoints (reference §5)

#[tokio::test]
async fn health_ready_and_status_answer_while_the_flow_loads() {
    let mut runner = RunnerProcess::start(&flow("slow-load.mjs"), &[]).await;

    let health = runner.get("/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert_eq!(health.json(), json!({"status": "ok"}));
    assert_keep_alive(&health);

    let ready = runner.get("/ready").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json(), json!({"status": "not_ready"}));

    let intake = runner
        .post_json("/collect", r#"{"name":"page view"}"#)
        .await;
    assert_eq!(intake.status, 503);
    assert_eq!(intake.json(), json!({"error": "No flow loaded"}));

    let status = runner.get("/status").await.json();
    assert_eq!(status["status"], "starting");
    assert_eq!(status["mode"], "collect");
    assert_eq!(status["flow"], Value::Null);
    assert_eq!(status["port"], runner.addr.port());
    let id = status["instanceId"].as_str().unwrap();
    assert!(
        id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );

    // HEAD works on every runner endpoint: same status and length, no body.
    let head = runner.send(Req::new("HEAD", "/health")).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("15"));
    assert!(head.body.is_empty());
    assert_eq!(runner.send(Req::new("HEAD", "/ready")).await.status, 503);

    // Stopping while the flow still loads is a clean shutdown.
    runner.signal(libc::SIGTERM);
    assert_eq!(runner.wait_exit().await, Some(0));
}

#[tokio::test]
async fn ready_status_and_metrics_once_the_flow_runs() {
    let (sink, runner) = recorder(None, &[]).await;

    let ready = runner.get("/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json(), json!({"status": "ready"}));

    assert_success_ack(
        &runner
            .post_json("/collect", &page_view("Home").to_string())
            .await,
    );
    wait_delivered(&sink, 1).await;

    let status = runner.get("/status").await.json();
    for (key, expected) in [
        ("status", json!("running")),
        ("mode", json!("collect")),
        ("configVersion", json!("local")),
        ("configSource", json!("local")),
        ("flow", json!("recorder")),
        ("generation", json!(1)),
        ("apiEnabled", json!(false)),
        ("api", Value::Null),
        ("lastPoll", Value::Null),
        ("lastHeartbeat", Value::Null),
    ] {
        assert_eq!(status[key], expected, "/status {key}: {status}");
    }
    assert!(
        status["uptime"].is_u64() && status["version"].is_string(),
        "{status}"
    );

    let metrics = runner.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let page = metrics.text();
    for line in [
        "flowhost_http_requests_total{route=\"ready\",status=\"200\"} 1",
        "flowhost_http_requests_total{route=\"intake\",status=\"200\"} 1",
        "flowhost_events_received_total 1",
        "flowhost_ready 1",
        "flowhost_flow_generation 1",
        "flowhost_instance_recycles_total 0",
        "flowhost_flow_swaps_total 0",
    ] {
        assert!(
            page.lines().any(|l| l == line),
            "missing {line:?} in\n{page}"
        );
    }
    assert!(page.contains("# TYPE flowhost_guest_calls_total counter"));
    assert!(page.contains("flowhost_artifact_cache_"));
    let guest_memory: u64 = page
        .lines()
        .find_map(|l| l.strip_prefix("flowhost_guest_memory_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no flowhost_guest_memory_bytes in\n{page}"));
    assert!(
        guest_memory >= 1 << 20,
        "the live instance's memory is counted: {guest_memory}"
    );

    let head = runner.send(Req::new("HEAD", "/metrics")).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let head = runner.send(Req::new("HEAD", "/status")).await;
    assert_eq!(head.status, 200);

    let post = runner.send(Req::new("POST", "/health").body("")).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

/// After a burst, blocks parked in glibc's per-thread cache pin pages that `malloc_trim` cannot
/// return, so the runner restarts itself once with that cache off unless the operator set its
/// size; and it trims its heap once the start (a build or a cache load) is over, and again once
/// traffic stops.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test]
async fn the_runner_turns_off_glibcs_thread_cache_and_trims_its_heap_when_quiet() {
    const TRIMMED: &str = "Quiet: free heap pages returned to the system";
    let sink = start_sink(Duration::ZERO).await;
    let log = ("FLOWHOST_LOG", "info,flowhost::runner::idle=debug");
    let envs = [("SINK_URL", sink.url.as_str()), ("GLIBC_TUNABLES", ""), log];
    let runner = RunnerProcess::ready(&flow("recorder.mjs"), &envs).await;
    assert_eq!(
        runner.environ("GLIBC_TUNABLES").as_deref(),
        Some("glibc.malloc.tcache_count=0")
    );
    let first = runner
        .wait_for_log(TRIMMED)
        .await
        .unwrap_or_else(|| panic!("no trim after the start; log:\n{}", runner.log_text()));
    assert_eq!(first["fields"]["quiet_seconds"], 1, "{first}");
    assert_success_ack(
        &runner
            .post_json("/collect", &page_view("Home").to_string())
            .await,
    );
    wait_delivered(&sink, 1).await;
    eventually("a trim after the request", || {
        runner.count_logs(TRIMMED) >= 2
    })
    .await;
    assert_eq!(runner.get("/health").await.status, 200);
    drop(runner);

    // A size the operator chose wins. (With several tunables glibc cuts the kernel's copy of the
    // variable after the first, so /proc cannot show a list; a unit test checks the joining.)
    let envs = [
        ("SINK_URL", sink.url.as_str()),
        ("GLIBC_TUNABLES", "glibc.malloc.tcache_count=3"),
    ];
    let runner = RunnerProcess::ready(&flow("recorder.mjs"), &envs).await;
    assert_eq!(
        runner.environ("GLIBC_TUNABLES").as_deref(),
        Some("glibc.malloc.tcache_count=3")
    );
    assert_eq!(runner.get("/health").await.status, 200);
}

#[tokio::test]
async fn a_flow_that_fails_to_load_stops_the_runner_with_the_reason() {
    let mut runner = RunnerProcess::start(&flow("broken-load.mjs"), &[]).await;
    assert_eq!(runner.wait_exit().await, Some(1));
    let line = runner
        .find_log("Flow failed to load")
        .unwrap_or_else(|| panic!("no failure line:\n{}", runner.log_text()));
    assert!(
        line["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("boom while loading"),
        "{line}"
    );
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight_while_ready_says_draining() {
    let idle = [("FLOWHOST_HTTP_IDLE_TIMEOUT_MS", "600000")];
    let (sink, mut runner) = recorder(None, &idle).await;

    // Two idle keep-alive connections, and a pixel GET (sync) the flow holds on to.
    let mut watcher = runner.connect().await;
    assert_eq!(watcher.send(&Req::new("GET", "/health")).await.status, 200);
    let mut releaser = runner.connect().await;
    assert_eq!(releaser.send(&Req::new("GET", "/health")).await.status, 200);
    let mut held = runner.connect().await;
    held.write_raw(&Req::new("GET", "/collect?name=hold%20one").encode())
        .await
        .unwrap();
    let metrics_say_received = async {
        loop {
            let page = runner.get("/metrics").await.text();
            if page
                .lines()
                .any(|l| l == "flowhost_events_received_total 1")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, metrics_say_received)
        .await
        .expect("the held event reaches the flow");

    runner.signal(libc::SIGTERM);
    runner
        .wait_for_log("Shutting down")
        .await
        .expect("shutdown starts");

    // Work in progress keeps the runner up; /ready says why, and asks the client to close.
    let ready = watcher.send(&Req::new("GET", "/ready")).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json(), json!({"status": "draining"}));
    assert_eq!(ready.header("connection"), Some("close"));
    assert!(
        tokio::net::TcpStream::connect(runner.addr).await.is_err(),
        "new connections are refused while draining"
    );

    // Releasing the held event lets its request finish, then the runner exits cleanly.
    let release = releaser
        .send(
            &Req::new("POST", "/collect")
                .header("Content-Type", "application/json")
                .body(r#"{"name":"release one"}"#),
        )
        .await;
    assert_eq!(release.status, 200);
    let pixel = held.read_response("GET").await.unwrap();
    assert_eq!(pixel.status, 200);
    assert_eq!(pixel.header("content-type"), Some("image/gif"));
    assert_eq!(runner.wait_exit().await, Some(0));
    let mut got = names(&delivered(&sink));
    got.sort();
    assert_eq!(got, ["hold one", "release one"]);
}

#[tokio::test]
async fn sighup_swaps_in_a_new_generation_and_keeps_serving() {
    let (sink, runner) = recorder(None, &[]).await;
    assert_success_ack(
        &runner
            .post_json("/collect", &page_view("before").to_string())
            .await,
    );

    runner.signal(libc::SIGHUP);
    runner
        .wait_for_log("Flow swapped")
        .await
        .expect("the swap happens");

    assert_success_ack(
        &runner
            .post_json("/collect", &page_view("after").to_string())
            .await,
    );
    let got = wait_delivered(&sink, 2).await;
    assert_eq!(sorted_titles(&got), ["after", "before"]);

    let status = runner.get("/status").await.json();
    assert_eq!(status["generation"], 2);
    let page = runner.get("/metrics").await.text();
    assert!(
        page.lines().any(|l| l == "flowhost_flow_swaps_total 1"),
        "{page}"
    );
    assert!(
        page.lines()
            .any(|l| l == "flowhost_events_received_total 2"),
        "{page}"
    );
}

/// A failed load after boot is a failed swap, not a failed runner: the original keeps its
/// current flow and leaves `/ready` alone (reference §4.1), and so does flowhost. Only a failed
/// boot load marks the runner failed, and that stops it with exit status 1 (tested above).
#[tokio::test]
async fn a_failed_reload_keeps_the_current_flow_ready_and_a_mended_one_swaps_in() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("flow.mjs");
    std::fs::copy(support::flow("recorder.mjs"), &bundle).unwrap();
    let sink = start_sink(Duration::ZERO).await;
    let bundle_arg = bundle.display().to_string();
    let runner = RunnerProcess::ready(&bundle_arg, &[("SINK_URL", sink.url.as_str())]).await;

    std::fs::copy(support::flow("broken-load.mjs"), &bundle).unwrap();
    runner.signal(libc::SIGHUP);
    let line = runner
        .wait_for_log("Reload failed, keeping the current flow")
        .await
        .unwrap_or_else(|| panic!("no reload failure:\n{}", runner.log_text()));
    assert!(
        line["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("boom while loading")),
        "{line}"
    );

    let ready = runner.get("/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json(), json!({"status": "ready"}));
    let status = runner.get("/status").await.json();
    assert_eq!(status["status"], "running", "{status}");
    assert_eq!(status["generation"], 1, "{status}");
    assert_success_ack(
        &runner
            .post_json("/collect", &page_view("kept").to_string())
            .await,
    );
    assert_eq!(sorted_titles(&wait_delivered(&sink, 1).await), ["kept"]);
    let page = runner.get("/metrics").await.text();
    for line in ["flowhost_flow_swaps_total 0", "flowhost_ready 1"] {
        assert!(
            page.lines().any(|l| l == line),
            "missing {line:?} in\n{page}"
        );
    }

    // Mended, the flow is swapped in by the next SIGHUP as generation 2.
    std::fs::copy(support::flow("recorder.mjs"), &bundle).unwrap();
    runner.signal(libc::SIGHUP);
    runner
        .wait_for_log("Flow swapped")
        .await
        .unwrap_or_else(|| panic!("no swap:\n{}", runner.log_text()));
    assert_eq!(runner.get("/status").await.json()["generation"], 2);
    assert_success_ack(
        &runner
            .post_json("/collect", &page_view("mended").to_string())
            .await,
    );
    assert_eq!(
        sorted_titles(&wait_delivered(&sink, 2).await),
        ["kept", "mended"]
    );
}

// ---------------------------------------------------------------------------------------------
// The express source contract (reference §9, anchor §5)

#[tokio::test]
async fn post_is_acknowledged_before_delivery_and_delivered_with_its_scope() {
    let (sink, runner) = recorder(None, &[]).await;
    let event = page_view("Home");
    let response = runner
        .send(
            Req::new("POST", "/collect?utm=a&utm=b")
                .header("Content-Type", "application/json")
                .header("User-Agent", "flowhost-test")
                .body(event.to_string()),
        )
        .await;

    assert_success_ack(&response);
    assert_eq!(
        response.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(response.header("content-length"), Some("42"));
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(response.header("x-powered-by"), None);
    assert_keep_alive(&response);

    let got = wait_delivered(&sink, 1).await;
    assert_eq!(got[0]["source"], "http");
    assert_eq!(got[0]["event"], event);
    let scope = &got[0]["scope"];
    assert_eq!(scope["method"], "POST");
    assert_eq!(scope["path"], "/collect");
    assert_eq!(scope["url"], "http://flowhost.test/collect?utm=a&utm=b");
    assert_eq!(scope["query"], json!({"utm": "a,b"}));
    assert_eq!(scope["headers"]["user-agent"], "flowhost-test");
    assert_eq!(scope["body"], event);
    assert_eq!(scope["ip"], "127.0.0.1");
}

#[tokio::test]
async fn batches_are_delivered_in_order_as_arrays_and_envelopes() {
    let (sink, runner) = recorder(None, &[]).await;
    let array = json!([page_view("1"), page_view("2"), page_view("3")]);
    assert_success_ack(&runner.post_json("/collect", &array.to_string()).await);
    let got = wait_delivered(&sink, 3).await;
    let titles: Vec<_> = got
        .iter()
        .map(|d| d["event"]["data"]["title"].clone())
        .collect();
    assert_eq!(titles, [json!("1"), json!("2"), json!("3")]);
    assert_eq!(
        got[0]["scope"]["body"], array,
        "the scope's body is the whole batch"
    );

    let envelope = json!({"batch": [page_view("4")]});
    assert_success_ack(&runner.post_json("/collect", &envelope.to_string()).await);
    let got = wait_delivered(&sink, 4).await;
    assert_eq!(got[3]["event"]["data"]["title"], "4");
    assert_eq!(got[3]["scope"]["body"], envelope);

    // An empty batch is well formed and carries nothing.
    assert_success_ack(&runner.post_json("/collect", "[]").await);
}

#[tokio::test]
async fn a_batch_above_max_batch_size_is_refused_in_both_modes() {
    for respond_first in [json!(true), json!(false)] {
        let settings = json!({"paths": ["/collect"], "maxBatchSize": 2});
        let (sink, runner) = recorder(Some(source(settings, respond_first)), &[]).await;
        let batch = json!([page_view("1"), page_view("2"), page_view("3")]);
        let response = runner.post_json("/collect", &batch.to_string()).await;
        assert_eq!(response.status, 400);
        let body = response.json();
        assert_eq!(body["success"], false);
        assert_eq!(body["error"], "Batch too large. Maximum size: 2 events");
        assert!(body["timestamp"].is_u64());
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        assert!(delivered(&sink).is_empty());
    }
}

#[tokio::test]
async fn sync_mode_answers_with_each_outcome() {
    let settings = json!({"paths": ["/collect"]});
    let (sink, runner) = recorder(Some(source(settings, json!({"POST": false}))), &[]).await;

    // Delivered before the answer: the sink already has it.
    let ok = runner
        .post_json("/collect", &page_view("sync").to_string())
        .await;
    assert_success_ack(&ok);
    assert_eq!(delivered(&sink).len(), 1);

    let invalid = runner.post_json("/collect", r#"{"name":"error it"}"#).await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.json()["error"], "Event refused by the flow");
    assert!(invalid.json()["timestamp"].is_u64());

    let failed = runner.post_json("/collect", r#"{"name":"fail it"}"#).await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.json()["success"], false);
    assert_eq!(failed.json()["error"], "Destination refused");

    let threw = runner.post_json("/collect", r#"{"name":"throw it"}"#).await;
    assert_eq!(threw.status, 500);
    assert_eq!(
        threw.json(),
        json!({"success": false, "error": "Internal server error"})
    );

    let batch = json!([
        {"name": "page view", "id": "a"},
        {"name": "page view", "id": "b"}
    ]);
    let all_ok = runner.post_json("/collect", &batch.to_string()).await;
    assert_eq!(all_ok.status, 200);
    assert_eq!(
        all_ok.json(),
        json!({"success": true, "processed": 2, "ids": ["a", "b"]})
    );

    let mixed = json!([{"name": "page view", "id": "c"}, {"name": "fail it"}]);
    let some_failed = runner.post_json("/collect", &mixed.to_string()).await;
    assert_eq!(some_failed.status, 207);
    assert_eq!(
        some_failed.json(),
        json!({"success": false, "processed": 1, "failed": 1,
               "errors": [{"index": 1, "error": "Destination refused"}]})
    );
}

#[tokio::test]
async fn body_errors_get_json_answers_with_cors_headers() {
    let (sink, runner) = recorder(None, &[]).await;

    let malformed = runner
        .post_json("/collect", r#"{"name":"page view","#)
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["success"], false);
    assert!(
        malformed.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON"),
        "{}",
        malformed.text()
    );
    assert_eq!(malformed.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        malformed.header("content-type"),
        Some("application/json; charset=utf-8")
    );

    let scalar = runner.post_json("/collect", r#""page view""#).await;
    assert_eq!(scalar.status, 400);
    assert_eq!(
        scalar.json()["error"],
        "Invalid JSON: the body must be an object or an array"
    );

    // Refused on the declared length, before the body is sent.
    let mut client = runner.connect().await;
    client
        .write_raw(
            b"POST /collect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1048577\r\n\r\n",
        )
        .await
        .unwrap();
    let too_large = client.read_response("POST").await.unwrap();
    assert_eq!(too_large.status, 413);
    assert_eq!(
        too_large.json(),
        json!({"success": false, "error": "request entity too large"})
    );

    let charset = runner
        .send(
            Req::new("POST", "/collect")
                .header("Content-Type", "application/json; charset=latin1")
                .body(page_view("x").to_string()),
        )
        .await;
    assert_eq!(charset.status, 415);
    assert_eq!(
        charset.json(),
        json!({"success": false, "error": "unsupported charset \"LATIN1\""})
    );

    let encoding = runner
        .send(encoded_json_post("compress", b"x".to_vec()))
        .await;
    assert_eq!(encoding.status, 415);
    assert_eq!(
        encoding.json()["error"],
        "unsupported content encoding \"compress\""
    );
    assert!(delivered(&sink).is_empty());
}

#[tokio::test]
async fn text_plain_gzip_and_deflate_bodies_are_delivered() {
    let (sink, runner) = recorder(None, &[]).await;
    let beacon = runner
        .send(
            Req::new("POST", "/collect")
                .header("Content-Type", "text/plain;charset=UTF-8")
                .body(page_view("beacon").to_string()),
        )
        .await;
    assert_success_ack(&beacon);

    let gzip = gzip(page_view("gzip").to_string().as_bytes());
    assert_success_ack(&runner.send(encoded_json_post("gzip", gzip)).await);
    let deflate = deflate(page_view("deflate").to_string().as_bytes());
    assert_success_ack(&runner.send(encoded_json_post("deflate", deflate)).await);

    let got = wait_delivered(&sink, 3).await;
    assert_eq!(sorted_titles(&got), ["beacon", "deflate", "gzip"]);
}

/// A JSON POST to `/collect` whose body is compressed with `encoding`.
fn encoded_json_post(encoding: &str, body: Vec<u8>) -> Req {
    Req::new("POST", "/collect")
        .header("Content-Type", "application/json")
        .header("Content-Encoding", encoding)
        .body(body)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    out.write_all(bytes).unwrap();
    out.finish().unwrap()
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut out = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    out.write_all(bytes).unwrap();
    out.finish().unwrap()
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams::default();
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).unwrap();
    out
}

/// `text` as UTF-16 code units in the given byte order, after a byte order mark if asked.
fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let bom = bom.then_some('\u{FEFF}');
    let text: String = bom.into_iter().chain(text.chars()).collect();
    text.encode_utf16()
        .flat_map(|u| {
            if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            }
        })
        .collect()
}

#[tokio::test]
async fn brotli_bodies_are_delivered_and_a_brotli_bomb_gets_413() {
    let (sink, runner) = recorder(None, &[]).await;
    let post_brotli = |body: Vec<u8>| encoded_json_post("br", body);

    let json = page_view("brotli").to_string();
    assert_success_ack(&runner.send(post_brotli(brotli(json.as_bytes()))).await);

    // A valid event padded to 4 MiB compresses to a few hundred bytes; the 1 MB limit is on
    // what it decompresses to.
    let padding = "a".repeat(4 << 20);
    let bomb = brotli(page_view(&padding).to_string().as_bytes());
    assert!(bomb.len() < 16 * 1024, "{} bytes", bomb.len());
    let refused = runner.send(post_brotli(bomb)).await;
    assert_eq!(refused.status, 413);
    assert_eq!(
        refused.json(),
        json!({"success": false, "error": "request entity too large"})
    );

    let corrupt = runner.send(post_brotli(b"not brotli".to_vec())).await;
    assert_eq!(corrupt.status, 400);
    assert_eq!(corrupt.json()["success"], false);

    // The runner goes on serving; only the good body was delivered.
    let json = page_view("after the bomb").to_string();
    assert_success_ack(&runner.send(post_brotli(brotli(json.as_bytes()))).await);
    let got = wait_delivered(&sink, 2).await;
    assert_eq!(sorted_titles(&got), ["after the bomb", "brotli"]);
}

#[tokio::test]
async fn utf16_bodies_are_delivered_and_other_charsets_get_415() {
    let (sink, runner) = recorder(None, &[]).await;
    let post = |content_type: &str, body: Vec<u8>| {
        Req::new("POST", "/collect")
            .header("Content-Type", content_type)
            .body(body)
    };

    let json = page_view("Grüße aus UTF-16LE").to_string();
    let le = post(
        "application/json; charset=utf-16le",
        utf16(&json, false, false),
    );
    assert_success_ack(&runner.send(le).await);

    // The byte order mark says big-endian; sendBeacon-style text/plain.
    let json = page_view("UTF-16 mit BOM").to_string();
    let bom = post("text/plain;charset=UTF-16", utf16(&json, true, true));
    assert_success_ack(&runner.send(bom).await);

    let json = page_view("UTF-32").to_string();
    let refused = runner
        .send(post("application/json; charset=utf-32", json.into_bytes()))
        .await;
    assert_eq!(refused.status, 415);
    assert_eq!(
        refused.json(),
        json!({"success": false, "error": "unsupported charset \"UTF-32\""})
    );

    let got = wait_delivered(&sink, 2).await;
    assert_eq!(
        sorted_titles(&got),
        ["Grüße aus UTF-16LE", "UTF-16 mit BOM"]
    );
}

#[tokio::test]
async fn the_pixel_get_parses_bracket_queries_and_answers_the_gif() {
    let (sink, runner) = recorder(None, &[]).await;
    let response = runner
        .get("/collect?name=page%20view&data[title]=Home&data[n]=1&data[price]=9.99&data[ok]=true&nested[0][entity]=product")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("image/gif"));
    assert_eq!(
        response.header("cache-control"),
        Some("no-cache, no-store, must-revalidate")
    );
    use base64::Engine;
    assert_eq!(
        response.body,
        base64::engine::general_purpose::STANDARD
            .decode(GIF)
            .unwrap()
    );
    assert_eq!(response.body.len(), 42);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_keep_alive(&response);

    // GET is sync by default: delivered before the GIF went out.
    let got = delivered(&sink);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["event"],
        json!({"name": "page view", "data": {"title": "Home", "n": 1, "price": 9.99, "ok": true},
               "nested": [{"entity": "product"}]})
    );
    assert_eq!(got[0]["scope"]["method"], "GET");
    assert_eq!(got[0]["scope"]["query"]["data[n]"], "1");
    assert!(got[0]["scope"].get("body").is_none());
}

#[tokio::test]
async fn cors_options_and_lists_of_origins() {
    let settings = json!({"paths": ["/collect"], "cors": {
        "origin": ["https://shop.example.com"], "credentials": true, "maxAge": 600
    }});
    let (_sink, runner) = recorder(Some(source(settings, Value::Null)), &[]).await;
    let preflight = runner
        .send(
            Req::new("OPTIONS", "/collect")
                .header("Origin", "https://shop.example.com")
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "content-type"),
        )
        .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("600"));
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET,HEAD,PUT,PATCH,POST,DELETE")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(
        preflight.header("vary"),
        Some("Origin, Access-Control-Request-Headers")
    );

    let other = runner
        .send(
            Req::new("POST", "/collect")
                .header("Origin", "https://elsewhere.example")
                .header("Content-Type", "application/json")
                .body(page_view("x").to_string()),
        )
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
    assert_eq!(other.header("vary"), Some("Origin"));
}

#[tokio::test]
async fn default_cors_answers_every_preflight_and_cors_false_sends_no_headers() {
    let (_sink, runner) = recorder(None, &[]).await;
    let bare = runner.send(Req::new("OPTIONS", "/collect")).await;
    assert_eq!(bare.status, 204);
    assert_eq!(bare.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        bare.header("access-control-allow-methods"),
        Some("GET,HEAD,PUT,PATCH,POST,DELETE")
    );
    assert_eq!(bare.header("access-control-allow-headers"), None);
    assert_eq!(bare.header("vary"), Some("Access-Control-Request-Headers"));
    assert_eq!(bare.header("x-content-type-options"), Some("nosniff"));
    assert_keep_alive(&bare);
    // The middleware is app-wide: unknown paths get their preflight answered too.
    assert_eq!(
        runner.send(Req::new("OPTIONS", "/elsewhere")).await.status,
        204
    );

    let settings = json!({"paths": ["/collect"], "cors": false});
    let (_sink, runner) = recorder(Some(source(settings, Value::Null)), &[]).await;
    let options = runner.send(Req::new("OPTIONS", "/collect")).await;
    assert_eq!(options.status, 204);
    assert_eq!(options.header("access-control-allow-origin"), None);
    assert_eq!(
        runner.send(Req::new("OPTIONS", "/elsewhere")).await.status,
        404
    );
    let post = runner
        .post_json("/collect", &page_view("x").to_string())
        .await;
    assert_eq!(post.status, 200);
    assert_eq!(post.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn routes_methods_and_unknown_paths_answer_as_express_does() {
    let settings = json!({"paths": ["/collect", {"path": "/pixel", "methods": ["GET"]}]});
    let (sink, runner) = recorder(Some(source(settings, Value::Null)), &[]).await;

    let put = runner.send(Req::new("PUT", "/collect").body("")).await;
    assert_eq!(put.status, 404);
    assert_eq!(put.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        put.header("content-security-policy"),
        Some("default-src 'none'")
    );
    assert_eq!(put.header("access-control-allow-origin"), Some("*"));
    assert_eq!(put.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        put.text(),
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Error</title>\n</head>\n<body>\n<pre>Cannot PUT /collect</pre>\n</body>\n</html>\n"
    );

    assert!(
        runner
            .get("/unknown")
            .await
            .text()
            .contains("Cannot GET /unknown")
    );
    let post_pixel = runner
        .post_json("/pixel", &page_view("x").to_string())
        .await;
    assert_eq!(post_pixel.status, 404);
    assert!(post_pixel.text().contains("Cannot POST /pixel"));
    assert_eq!(runner.get("/pixel?name=page%20view").await.status, 200);

    let head = runner.send(Req::new("HEAD", "/collect")).await;
    assert_eq!(head.status, 405);
    assert_eq!(head.header("content-length"), Some("74"));

    // Express routing is case-insensitive and non-strict.
    assert_success_ack(
        &runner
            .post_json("/collect/", &page_view("slash").to_string())
            .await,
    );
    assert_success_ack(
        &runner
            .post_json("/COLLECT", &page_view("upper").to_string())
            .await,
    );
    wait_delivered(&sink, 3).await;
}

#[tokio::test]
async fn undeliverable_events_are_refused_with_the_reason() {
    let (sink, runner) = recorder(None, &[]).await;
    let refused = |response: &Response, error: &str| {
        assert_eq!(response.status, 400, "{}", response.text());
        let body = response.json();
        assert_eq!(body["success"], false);
        assert_eq!(body["error"], error, "{body}");
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    };

    let form = runner
        .send(
            Req::new("POST", "/collect")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("name=page+view"),
        )
        .await;
    refused(
        &form,
        "Unsupported Content-Type \"application/x-www-form-urlencoded\": send events as \
         application/json or text/plain",
    );
    let untyped = runner.send(Req::new("POST", "/collect").body("{}")).await;
    refused(
        &untyped,
        "Missing Content-Type: send events as application/json or text/plain",
    );
    let empty = runner.post_json("/collect", "").await;
    refused(
        &empty,
        "Request body is empty: send an event, an array of events or {\"batch\": [...]} as JSON",
    );
    refused(
        &runner.post_json("/collect", "{}").await,
        "Event name is required",
    );
    refused(
        &runner.post_json("/collect", r#"{"name":"pageview"}"#).await,
        "Event name is invalid",
    );
    refused(
        &runner
            .post_json("/collect", r#"{"event":"page view"}"#)
            .await,
        "Event name is required",
    );
    // Without a query the whole target is parsed, as in walkerOS: {"/collect": ""}.
    refused(&runner.get("/collect").await, "Event name is required");

    // In a batch, the refused events are reported by index and the others delivered.
    let mixed = json!([page_view("kept"), {"name": "pageview"}]);
    let partial = runner.post_json("/collect", &mixed.to_string()).await;
    assert_eq!(partial.status, 207);
    assert_eq!(
        partial.json(),
        json!({"success": false, "processed": 1, "failed": 1,
               "errors": [{"index": 1, "error": "Event name is invalid"}]})
    );
    let none = runner.post_json("/collect", r#"[{}, {"name": 3}]"#).await;
    assert_eq!(none.status, 400);
    assert_eq!(none.json()["failed"], 2);

    let got = wait_delivered(&sink, 1).await;
    assert_eq!(names(&got), ["page view"]);
    let page = runner.get("/metrics").await.text();
    // Only the valid event ever reached the flow.
    assert!(
        page.lines()
            .any(|l| l == "flowhost_events_received_total 1"),
        "{page}"
    );
    assert!(
        page.lines().any(|l| l == "flowhost_events_invalid_total 7"),
        "{page}"
    );
}

#[tokio::test]
async fn a_source_with_a_before_chain_leaves_validation_to_the_flow() {
    let sources = json!({"http": {"before": "decode", "config": {"async": false}}});
    let (_sink, runner) = recorder(Some(sources), &[]).await;
    // The host passes the empty event on; the flow's own gate refuses it.
    let empty = runner.post_json("/collect", "{}").await;
    assert_eq!(empty.status, 400);
    assert_eq!(empty.json()["error"], "Event name is required");
    let form = runner
        .send(
            Req::new("POST", "/collect")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("name=page+view"),
        )
        .await;
    assert_eq!(form.status, 400);
    assert_eq!(form.json()["error"], "Event name is required");
}

#[tokio::test]
async fn a_bundle_without_ingest_gets_each_event_through_push() {
    let sink = start_sink(Duration::ZERO).await;
    let runner =
        RunnerProcess::ready(&flow("push-only.mjs"), &[("SINK_URL", sink.url.as_str())]).await;
    assert_success_ack(
        &runner
            .post_json("/collect", &page_view("one").to_string())
            .await,
    );
    let batch = json!([{"name": "order complete"}, {"name": "fail it"}, {"name": "cart view"}]);
    assert_success_ack(&runner.post_json("/collect", &batch.to_string()).await);
    assert_eq!(runner.get("/collect?name=pixel%20view").await.status, 200);

    let got = wait_delivered(&sink, 4).await;
    let mut got = names(&got);
    got.sort();
    assert_eq!(
        got,
        ["cart view", "order complete", "page view", "pixel view"]
    );
    let page = runner.get("/metrics").await.text();
    assert!(
        page.lines().any(|l| l == "flowhost_events_failed_total 1"),
        "{page}"
    );
}

#[tokio::test]
async fn a_flow_config_runs_its_collector_behind_the_http_source() {
    let config = support::flow("../configs/valid/collect-noop.json");
    let registry = registry();
    let runner = RunnerProcess::ready(
        &config.display().to_string(),
        &[("NPM_CONFIG_REGISTRY", registry)],
    )
    .await;

    for event in ["page-view", "order-complete"] {
        let body =
            std::fs::read_to_string(support::flow(&format!("../events/{event}.json"))).unwrap();
        assert_success_ack(&runner.post_json("/collect", &body).await);
    }
    let pixel = runner
        .get("/collect?name=page%20view&data[title]=Home")
        .await;
    assert_eq!(pixel.status, 200);
    assert_eq!(pixel.header("content-type"), Some("image/gif"));
    let refused = runner.post_json("/collect", r#"{"name":"pageview"}"#).await;
    assert_eq!(refused.status, 400);

    // The collector reports each push; the no-op destination takes all three.
    let metrics = async {
        loop {
            let page = runner.get("/metrics").await.text();
            if page
                .lines()
                .any(|l| l == "flowhost_events_delivered_total 3")
            {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let page = tokio::time::timeout(PATIENCE, metrics)
        .await
        .expect("the collector delivers all three events");
    assert!(
        page.lines().any(|l| l == "flowhost_events_failed_total 0"),
        "{page}"
    );
    let status = runner.get("/status").await.json();
    assert_eq!(status["flow"], "default");
    assert_eq!(status["configSource"], "local");
}

/// `collect-ingest.json` (sync intake; the source's `ingest` mapping reads the scope, its
/// mapping renames page views, its `next` transformer stamps the tenant, and an inline
/// destination reports `{event, ingest}` to a fresh sink and answers `asset` events itself).
async fn ingest_flow() -> (Sink, RunnerProcess) {
    let sink = start_sink(Duration::ZERO).await;
    let config = support::flow("../configs/valid/collect-ingest.json");
    let registry = registry();
    let runner = RunnerProcess::ready(
        &config.display().to_string(),
        &[
            ("NPM_CONFIG_REGISTRY", registry),
            ("SINK_URL", sink.url.as_str()),
        ],
    )
    .await;
    (sink, runner)
}

/// A JSON POST from tenant `acme` (header `X-Tenant`).
fn tenant_post(path: &str, body: &str) -> Req {
    Req::new("POST", path)
        .header("Content-Type", "application/json")
        .header("X-Tenant", "acme")
        .body(body)
}

#[tokio::test]
async fn a_flow_config_runs_each_request_through_its_source_with_the_request_scope() {
    let (sink, runner) = ingest_flow().await;
    let response = runner
        .send(
            tenant_post(
                "/collect?utm_campaign=spring",
                &page_view("Home").to_string(),
            )
            .header("User-Agent", "flowhost-test"),
        )
        .await;
    assert_success_ack(&response);

    // Sync: the destination has reported before the answer.
    let got = delivered(&sink);
    assert_eq!(got.len(), 1, "{got:?}");
    let (event, ingest) = (&got[0]["event"], &got[0]["ingest"]);
    assert_eq!(
        event["name"], "page viewed",
        "the source mapping renamed it"
    );
    assert_eq!(
        event["data"],
        json!({"title": "Home", "tenant": "acme"}),
        "the next chain stamped the tenant from the ingest"
    );
    assert_eq!(ingest["ip"], "127.0.0.1");
    assert_eq!(ingest["path"], "/collect");
    assert_eq!(ingest["agent"], "flowhost-test");
    assert_eq!(ingest["tenant"], "acme");
    assert_eq!(ingest["campaign"], "spring");
    assert_eq!(ingest["_meta"]["path"][0], "http");
    assert!(
        ingest["_meta"]["path"]
            .as_array()
            .unwrap()
            .contains(&json!("stamp")),
        "{ingest}"
    );

    // Another route and no tenant: each request gets its own scope.
    let other = runner
        .post_json("/t/acme/collect", r#"{"name":"order complete"}"#)
        .await;
    assert_success_ack(&other);
    let got = wait_delivered(&sink, 2).await;
    assert_eq!(got[1]["event"]["name"], "order complete");
    assert_eq!(got[1]["event"]["data"]["tenant"], "none");
    assert_eq!(got[1]["ingest"]["path"], "/t/acme/collect");
    assert!(got[1]["ingest"].get("tenant").is_none(), "{}", got[1]);
}

#[tokio::test]
async fn a_batch_goes_through_the_source_in_order_and_invalid_events_get_the_collectors_reason() {
    let (sink, runner) = ingest_flow().await;
    let batch = json!([page_view("1"), {"name": "cart view"}, page_view("3")]);
    let response = runner
        .send(tenant_post("/collect", &batch.to_string()))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["processed"], 3);

    let got = delivered(&sink);
    assert_eq!(names(&got), ["page viewed", "cart view", "page viewed"]);
    let ids: Vec<&Value> = got.iter().map(|d| &d["event"]["id"]).collect();
    assert_eq!(
        body["ids"].as_array().unwrap().iter().collect::<Vec<_>>(),
        ids
    );
    assert!(got.iter().all(|d| d["ingest"]["tenant"] == "acme"));

    // With a `next` chain the host leaves the name check to the collector, whose reasons the
    // answers carry: 400 for a single event, by index in a batch.
    let invalid = runner.post_json("/collect", r#"{"name":"pageview"}"#).await;
    assert_eq!(invalid.status, 400, "{}", invalid.text());
    assert_eq!(invalid.json()["error"], "Event name is invalid");
    let missing = runner.post_json("/collect", r#"{"data":{"a":1}}"#).await;
    assert_eq!(missing.status, 400, "{}", missing.text());
    assert_eq!(missing.json()["error"], "Event name is required");
    let mixed = json!([page_view("4"), {"name": "pageview"}]);
    let partial = runner.post_json("/collect", &mixed.to_string()).await;
    assert_eq!(partial.status, 207, "{}", partial.text());
    assert_eq!(
        partial.json(),
        json!({"success": false, "processed": 1, "failed": 1,
               "errors": [{"index": 1, "error": "Event name is invalid"}]})
    );
    assert_eq!(delivered(&sink).len(), 4);

    let page = runner.get("/metrics").await.text();
    for line in [
        "flowhost_events_received_total 7",
        "flowhost_events_delivered_total 4",
        "flowhost_events_invalid_total 3",
        "flowhost_events_failed_total 0",
    ] {
        assert!(page.lines().any(|l| l == line), "{line} in\n{page}");
    }
}

#[tokio::test]
async fn a_step_answers_the_request_itself_through_respond() {
    let (sink, runner) = ingest_flow().await;

    // The first respond call wins; the step's headers beat the app-wide CORS header.
    let response = runner
        .send(tenant_post("/collect", r#"{"name":"asset request"}"#))
        .await;
    assert_eq!(response.status, 201, "{}", response.text());
    let recorded = wait_delivered(&sink, 1).await;
    assert_eq!(
        response.json(),
        json!({"tenant": "acme", "id": recorded[0]["event"]["id"]})
    );
    assert_eq!(
        response.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(response.header("x-answered-by"), Some("record"));
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_keep_alive(&response);

    // A pixel GET (sync by default) gets the bytes a step sends instead of the GIF.
    let image = runner.get("/collect?name=asset%20image").await;
    assert_eq!(image.status, 200);
    assert_eq!(image.header("content-type"), Some("image/png"));
    assert_eq!(image.header("cache-control"), Some("max-age=60"));
    assert_eq!(image.body, [137, 80, 78, 71]);
    assert_eq!(image.header("access-control-allow-origin"), Some("*"));

    // Without a step answering, the source's own answers.
    let pixel = runner.get("/collect?name=page%20view").await;
    assert_eq!(pixel.header("content-type"), Some("image/gif"));
    assert_success_ack(
        &runner
            .post_json("/collect", &page_view("x").to_string())
            .await,
    );
    assert_eq!(wait_delivered(&sink, 4).await.len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Slow, oversized and many clients

#[tokio::test]
async fn slow_clients_are_cut_off_and_others_are_served_meanwhile() {
    let envs = [
        ("FLOWHOST_HTTP_IDLE_TIMEOUT_MS", "1000"),
        ("FLOWHOST_HTTP_BODY_TIMEOUT_MS", "1000"),
    ];
    let (_sink, runner) = recorder(None, &envs).await;

    // Slowloris: headers that never finish, a byte at a time.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut client = runner.connect().await;
        client
            .write_raw(b"POST /collect HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(tokio::spawn(async move {
            for _ in 0..600 {
                if client.write_raw(b"X").await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            client.closed_by_server().await
        }));
    }
    for _ in 0..5 {
        assert_eq!(runner.get("/health").await.status, 200);
        assert_success_ack(
            &runner
                .post_json("/collect", &page_view("x").to_string())
                .await,
        );
    }
    for task in slow {
        assert!(task.await.unwrap(), "the server cut the slow client off");
    }

    // A body that never arrives in full is answered 408.
    let mut client = runner.connect().await;
    client
        .write_raw(
            b"POST /collect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"name\":",
        )
        .await
        .unwrap();
    let timed_out = client.read_response("POST").await.unwrap();
    assert_eq!(timed_out.status, 408);
    assert_eq!(
        timed_out.json(),
        json!({"success": false, "error": "request body timed out"})
    );
    assert_eq!(runner.get("/health").await.status, 200);
}

#[tokio::test]
async fn oversized_headers_and_bodies_are_refused_and_the_runner_keeps_serving() {
    let (sink, runner) = recorder(None, &[]).await;

    let huge_header = runner
        .send(Req::new("GET", "/health").header("X-Big", &"a".repeat(20 * 1024)))
        .await;
    assert_eq!(huge_header.status, 431);

    // A declared length above the limit is refused before the body is sent.
    let mut client = runner.connect().await;
    client
        .write_raw(
            b"POST /collect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 2000000\r\n\r\n",
        )
        .await
        .unwrap();
    let declared = client.read_response("POST").await.unwrap();
    assert_eq!(declared.status, 413);

    // A chunked body is counted as it arrives.
    let mut client = runner.connect().await;
    let chunk = vec![b' '; 64 * 1024];
    client
        .write_raw(
            b"POST /collect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let writer = async {
        // 17 chunks of 64 KiB pass the 1 MiB limit by one chunk; sending no more than that
        // keeps unread data (and a reset) out of the way of the answer.
        for _ in 0..17 {
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            if client.write_raw(&frame).await.is_err() {
                break;
            }
        }
        client.read_response("POST").await
    };
    let chunked = writer.await.unwrap();
    assert_eq!(chunked.status, 413);

    assert_eq!(runner.get("/health").await.status, 200);
    assert_success_ack(
        &runner
            .post_json("/collect", &page_view("after").to_string())
            .await,
    );
    wait_delivered(&sink, 1).await;
}

/// Opens `count` connections that each made one request and now sit idle. 10,000 is the
/// target; the load script (`benches/load.sh idle`) runs that many, this test a fifth of it
/// so it fits default file limits.
#[tokio::test]
async fn two_thousand_idle_keep_alive_connections_do_not_stop_the_runner() {
    // The test holds the client ends, the runner (which inherits the limit) the server ends.
    let count = raise_file_limit(2_300).saturating_sub(300).min(2_000);
    assert!(
        count >= 500,
        "the file limit allows only {count} connections"
    );
    let (sink, runner) = recorder(None, &[("FLOWHOST_HTTP_IDLE_TIMEOUT_MS", "600000")]).await;

    let mut idle: Vec<Client> = Vec::with_capacity(count);
    for _ in 0..count {
        let mut client = runner.connect().await;
        assert_eq!(client.send(&Req::new("GET", "/health")).await.status, 200);
        idle.push(client);
    }

    let ack = runner
        .post_json("/collect", &page_view("busy").to_string())
        .await;
    assert_success_ack(&ack);
    wait_delivered(&sink, 1).await;
    let page = runner.get("/metrics").await.text();
    let open: i64 = page
        .lines()
        .find_map(|l| l.strip_prefix("flowhost_http_connections "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        open >= count as i64,
        "{open} open connections, expected {count}"
    );

    // The idle connections still work.
    let first = idle.first_mut().unwrap();
    assert_eq!(first.send(&Req::new("GET", "/ready")).await.status, 200);
}

/// Raises this process's open-file limit towards `wanted` (children inherit it); returns the
/// limit now in force.
fn raise_file_limit(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if (limit.rlim_cur as usize) < wanted {
            limit.rlim_cur = (wanted as u64).min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur as usize
}

// ---------------------------------------------------------------------------------------------
// Serve mode and start-up errors

#[tokio::test]
async fn serve_mode_serves_the_bundle_with_an_etag() {
    let file = flow("push-only.mjs");
    let runner = RunnerProcess::start_args(
        &[&file],
        &[
            ("MODE", "serve"),
            ("SERVE_PATH", "static"),
            ("SERVE_NAME", "walker.js"),
        ],
    )
    .await;
    runner.wait_for_log("Flow running").await.unwrap();

    let script = runner.get("/static/walker.js").await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(script.body, std::fs::read(&file).unwrap());
    let etag = script.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(script.header("cache-control").unwrap().contains("max-age"));
    assert!(script.header("last-modified").is_some());
    assert_keep_alive(&script);

    let again = runner
        .send(Req::new("GET", "/static/walker.js").header("If-None-Match", &etag))
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let head = runner.send(Req::new("HEAD", "/static/walker.js")).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    assert_eq!(runner.get("/health").await.json(), json!({"status": "ok"}));
    assert_eq!(runner.get("/ready").await.status, 200);
    let status = runner.get("/status").await.json();
    assert_eq!(status["mode"], "serve");
    assert_eq!(status["serve"]["url"], "/static/walker.js");
    assert_eq!(runner.get("/walker.js").await.status, 404);
    assert_eq!(
        runner
            .send(Req::new("POST", "/static/walker.js").body(""))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn an_invalid_port_stops_with_the_original_message() {
    let run = support::flowhost(
        &["run", &flow("recorder.mjs")],
        &[("PORT", "70000"), ("HOST", "127.0.0.1")],
        "",
    )
    .await;
    assert_eq!(run.status, Some(1));
    assert!(
        run.stderr.contains(
            "Invalid port: 70000\n   Port must be an integer between 1 and 65535\n   Example: --port 8080"
        ),
        "{}",
        run.stderr
    );
}
